//go:build integration

package cluster

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/internal/testenv/kube"
)

// TestBootstrapControlPlane: podsup runs etcd and kube-apiserver as static
// pods, as kubeadm lays them out (host network, host paths for data and
// certificates, liveness probes on their health endpoints), and joins the
// cluster of the apiserver it runs: the Node and the mirror pods of those
// very pods show Running and Ready to kubectl.
func TestBootstrapControlPlane(t *testing.T) {
	t.Parallel()
	c := kube.NewCluster(t)
	e := newEnv(t)
	etcdRef := importBinary(t, e, "podsup.test/etcd:3.4", c.Bin.Etcd, "/usr/local/bin/etcd")
	apiRef := importBinary(t, e, "podsup.test/kube-apiserver:"+kube.Version, c.Bin.APIServer, "/usr/local/bin/kube-apiserver")

	dataDir := filepath.Join(c.Dir, "etcd")
	etcd := controlPlanePod("etcd", etcdRef, append([]string{"/usr/local/bin/etcd"}, kube.EtcdArgs(dataDir, c.Ports)...),
		&v1.HTTPGetAction{Host: "127.0.0.1", Port: intstr.FromInt(c.Ports.EtcdClient), Path: "/health", Scheme: v1.URISchemeHTTP},
		nil, dataDir)
	apiserver := controlPlanePod("kube-apiserver", apiRef, append([]string{"/usr/local/bin/kube-apiserver"}, kube.APIServerArgs(c.PKI.Dir, c.Ports)...),
		&v1.HTTPGetAction{Host: "127.0.0.1", Port: intstr.FromInt(c.Ports.APIServer), Path: "/livez", Scheme: v1.URISchemeHTTPS},
		&v1.HTTPGetAction{Host: "127.0.0.1", Port: intstr.FromInt(c.Ports.APIServer), Path: "/readyz", Scheme: v1.URISchemeHTTPS},
		c.PKI.Dir)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(e.Logs, "kube-system_*", "*", "*.log"))
			for _, l := range logs {
				data, _ := os.ReadFile(l)
				t.Logf("== %s\n%s", l, data[max(0, len(data)-3000):])
			}
		}
	})
	writePod(t, e, "etcd.yaml", etcd)
	writePod(t, e, "kube-apiserver.yaml", apiserver)
	start := time.Now()
	e.joinCluster(c)

	c.WaitReady(harness.Patience)
	t.Logf("the apiserver podsup runs was ready %s after podsup started", time.Since(start).Round(100*time.Millisecond))
	nodes := kubectlLine(t, c, []string{"get", "nodes"}, "node1", "Ready")
	kubectlLine(t, c, []string{"get", "pods", "-A"}, "kube-system", "etcd-node1", "1/1", "Running")
	pods := kubectlLine(t, c, []string{"get", "pods", "-A"}, "kube-system", "kube-apiserver-node1", "1/1", "Running")
	t.Logf("%s after podsup started:\nkubectl get nodes:\n%s\nkubectl get pods -A:\n%s", time.Since(start).Round(100*time.Millisecond), nodes, pods)

	admin := c.Client()
	for _, name := range []string{"etcd-node1", "kube-apiserver-node1"} {
		m := waitMirror(t, admin, "kube-system", name, func(m *v1.Pod) error {
			for _, cond := range m.Status.Conditions {
				if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
					return nil
				}
			}
			return fmt.Errorf("not Ready: %+v", m.Status.Conditions)
		})
		if m.Spec.PriorityClassName != "system-node-critical" || m.Spec.Priority == nil || *m.Spec.Priority != 2000001000 {
			t.Errorf("%s: priority %v of class %q", name, m.Spec.Priority, m.Spec.PriorityClassName)
		}
		if n := m.Status.ContainerStatuses[0].RestartCount; n != 0 {
			t.Errorf("%s restarted %d times: its liveness probe failed", name, n)
		}
	}
}

// controlPlanePod is a static pod of the control plane as kubeadm writes
// one: in kube-system, on the host network, node-critical, with a liveness
// probe and the host directory it needs mounted at the same path.
func controlPlanePod(name, ref string, command []string, liveness, readiness *v1.HTTPGetAction, hostDir string) *v1.Pod {
	dirType := v1.HostPathDirectoryOrCreate
	grace := int64(5)
	pod := &v1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system", Labels: map[string]string{"component": name, "tier": "control-plane"}},
		Spec: v1.PodSpec{
			HostNetwork:                   true,
			PriorityClassName:             "system-node-critical",
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{
				Name: name, Image: ref, Command: command,
				LivenessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: liveness},
					InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 15, FailureThreshold: 8},
				VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: hostDir}},
			}},
			Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: &dirType}}}},
		},
	}
	if readiness != nil {
		pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: readiness}, PeriodSeconds: 1, FailureThreshold: 3}
	}
	return pod
}

func writePod(t *testing.T, e *env, file string, pod *v1.Pod) {
	t.Helper()
	data, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	e.Write(file, string(data))
}

// importBinary builds an image of one program at path, with the shared
// libraries it links against (Debian's etcd is dynamically linked), and
// imports it into the test's namespace.
func importBinary(t *testing.T, e *env, ref, bin, path string) string {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	files := []image.File{{Path: path, Mode: 0o755, Data: data}, {Path: "/tmp", Mode: os.ModeDir | 0o777}}
	libs, err := sharedLibraries(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range libs {
		data, err := os.ReadFile(lib)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, image.File{Path: lib, Mode: 0o755, Data: data})
	}
	b := &image.Build{Ref: ref, Files: files, Config: ocispec.ImageConfig{Entrypoint: []string{path}}}
	if _, err := b.Import(e.Ctx, e.Client, testenv.Snapshotter); err != nil {
		t.Fatal(err)
	}
	return ref
}

// sharedLibraries lists the dynamic loader and the libraries a binary
// needs, found where Debian keeps them; none for a static binary.
func sharedLibraries(bin string) ([]string, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp := make([]byte, p.Filesz)
			if _, err := p.ReadAt(interp, 0); err != nil {
				return nil, err
			}
			out = append(out, string(interp[:len(interp)-1])) // NUL-terminated
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	for _, lib := range needed {
		found := ""
		for _, dir := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/lib", "/usr/lib"} {
			if _, err := os.Stat(filepath.Join(dir, lib)); err == nil {
				found = filepath.Join(dir, lib)
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%s needs %s, which is not in the usual places", bin, lib)
		}
		out = append(out, found)
	}
	return out, nil
}
