//go:build integration

package kubeadm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/internal/testenv/kube"
)

// controlPlane is what kubeadm init lays down: the components of its
// static pods, by the value of their "component" label.
var controlPlane = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// skippedPhases are the phases of kubeadm init podsup cannot serve:
// kube-proxy is a DaemonSet and CoreDNS a Deployment, pods the scheduler
// binds to a node's kubelet, and podsup runs static pods only. Their pods
// would stay Pending; ClusterConfiguration disables both addons, which
// also keeps their images out of `kubeadm config images list`.
//
// ignoredChecks are the preflight checks that fail for want of a kubelet:
// KubeletVersion and SystemVerification run `kubelet --version` (the
// latter to pick the kernel and cgroup requirements of that kubelet), and
// there is no kubelet binary.
const ignoredChecks = "KubeletVersion,SystemVerification"

// cluster is a kubeadm cluster in a box: its control-plane node and the
// containerd its nodes share.
type cluster struct {
	t     *testing.T
	box   *box
	bins  kube.KubeadmBinaries
	ctrd  *testenv.Containerd
	cp    *node
	dir   string // kubeadm's configuration files and patches
	admin string // kubectl's --kubeconfig, in the box
}

// TestKubeadm bootstraps a control plane with kubeadm init, podsup
// standing in for the kubelet, then runs kubeadm's other flows on it:
// upgrade apply, certs renew with the documented restart, and join of a
// second node.
func TestKubeadm(t *testing.T) {
	c := newCluster(t)
	start := time.Now()
	c.init()
	t.Logf("kubeadm init and a Ready control plane took %s", time.Since(start).Round(time.Second))
	steps := []struct {
		name string
		run  func(*cluster, *testing.T)
	}{
		{"UpgradeApply", (*cluster).upgradeApply},
		{"CertsRenew", (*cluster).certsRenew},
		{"Join", (*cluster).join},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			start := time.Now()
			s.run(c, t)
			t.Logf("%s took %s", s.name, time.Since(start).Round(time.Second))
		}) {
			return // the next step needs the cluster this one left
		}
	}
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	bins := kube.BuildKubeadm(t)
	b := newBox(t)
	c := &cluster{t: t, box: b, bins: bins, dir: t.TempDir(), admin: "/etc/kubernetes/admin.conf"}
	c.ctrd = testenv.StartContainerdFrom(t, testenv.BinDir(), testenv.WithCommandPrefix(b.enter()...), testenv.WithCRI())
	c.cp = newNode(t, "cp1", b.enter(), b.kubelet())
	return c
}

// write writes a file of the test's kubeadm configuration and returns its
// path, the same in the box as outside.
func (c *cluster) write(name, content string) string {
	c.t.Helper()
	path := filepath.Join(c.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// initConfig is kubeadm init's configuration: the advertise address of
// the box's interface (kubeadm would otherwise look for the
// interface of a default route, and the box has none), the node's name and
// InternalIP, containerd's socket, the addons podsup cannot run disabled,
// kubeadm's waits made as long as the test's, and the cgroupfs driver:
// kubeadm's default is systemd's, and this machine runs no systemd
// (containerd 2 tells podsup its runtime's driver over the CRI, which
// overrides the setting; containerd 1.6 cannot, so podsup follows it).
func (c *cluster) initConfig() string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: %[1]s
  bindPort: 6443
nodeRegistration:
  name: %[2]s
  criSocket: unix://%[3]s
  ignorePreflightErrors: [%[4]s]
  kubeletExtraArgs:
  - name: node-ip
    value: %[1]s
timeouts:
  kubeletHealthCheck: %[5]s
  controlPlaneComponentHealthCheck: %[5]s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %[6]s
dns:
  disabled: true
proxy:
  disabled: true
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
`, advertiseAddress, c.cp.name, c.ctrd.Address, ignoredChecks, kubeadmLimit, kube.Version)
}

// init runs kubeadm init and, once kubeadm wrote the kubelet's
// configuration, podsup in the kubelet's place, and waits until the node is
// Ready and the mirror pods of the control plane Running and Ready.
func (c *cluster) init() {
	t := c.t
	cfg := c.write("init.yaml", c.initConfig())
	list, err := c.box.run(context.Background(), c.bins.Kubeadm, "config", "images", "list", "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubeadm config images list:\n%s", list)
	importImages(t, c.ctrd, c.bins, list, "k8s.io", c.cp.ns)

	kubeadm := startBackground(t, c.box.enter(c.bins.Kubeadm, "init", "--config", cfg, "--v=1"))
	// As systemd restarts the kubelet until kubeadm wrote its
	// configuration; kubeadm-flags.env comes just before config.yaml.
	waitFile(t, kubeadm, filepath.Join(c.box.kubelet(), "config.yaml"))
	kubeletConf := filepath.Join(c.box.etc(), "kubernetes", "kubelet.conf")
	embedded, err := clientcmd.LoadFromFile(kubeletConf)
	if err != nil {
		t.Fatal(err)
	}
	c.cp.start()
	if err := kubeadm.wait(); err != nil {
		t.Fatalf("kubeadm init: %v\n%s", err, kubeadm.output())
	}
	t.Logf("kubeadm init:\n%s", kubeadm.output())
	c.waitNodeReady(c.cp.name)
	c.waitControlPlane(nil, time.Time{})

	// kubelet.conf had the node's certificate inline; podsup made it the
	// first of /var/lib/kubelet/pki, so kubeadm's kubelet-finalize pointed
	// kubelet.conf there, and rotated it with a request of the node's own.
	const pem = "/var/lib/kubelet/pki/kubelet-client-current.pem"
	conf, err := clientcmd.LoadFromFile(kubeletConf)
	if err != nil {
		t.Fatal(err)
	}
	auth := conf.AuthInfos[conf.Contexts[conf.CurrentContext].AuthInfo]
	if auth.ClientCertificate != pem || auth.ClientKey != pem {
		t.Errorf("kubeadm's kubelet-finalize left kubelet.conf with certificate %q, key %q", auth.ClientCertificate, auth.ClientKey)
	}
	first := embedded.AuthInfos[embedded.Contexts[embedded.CurrentContext].AuthInfo].ClientCertificateData
	c.waitUntil(t, "podsup rotating the certificate kubeadm init gave the node", func() string {
		// A symlink to /var/lib/kubelet/pki/kubelet-client-<time>.pem,
		// a path of the box's.
		pki := filepath.Join(c.box.kubelet(), "pki")
		target, err := os.Readlink(filepath.Join(pki, "kubelet-client-current.pem"))
		if err != nil {
			return err.Error()
		}
		data, err := os.ReadFile(filepath.Join(pki, filepath.Base(target)))
		if err != nil {
			return err.Error()
		}
		if bytes.Contains(data, first) {
			return "kubelet-client-current.pem still holds kubeadm's certificate"
		}
		return ""
	})
}

// kubectl runs kubectl in the box as kubeadm's admin.
func (c *cluster) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c.box.run(ctx, append([]string{c.bins.Kubectl, "--kubeconfig", c.admin, "--request-timeout=1m"}, args...)...)
}

// waitUntil polls check until it says nothing is missing (""), and fails
// with what it said last if that does not happen within kubeadmLimit.
func (c *cluster) waitUntil(t *testing.T, what string, check func() string) {
	t.Helper()
	if _, ok := testenv.Poll(kubeadmLimit, func() bool { return check() == "" }); ok {
		return
	}
	if why := check(); why != "" {
		t.Fatalf("not within %s: %s: %s", kubeadmLimit, what, why)
	}
}

// waitNodeReady waits until kubectl shows the node Ready.
func (c *cluster) waitNodeReady(name string) {
	c.t.Helper()
	c.waitUntil(c.t, "node "+name+" Ready", func() string {
		out, err := c.kubectl("get", "node", name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
		if err != nil {
			return err.Error()
		}
		if out != "True" {
			return "Ready is " + out
		}
		return ""
	})
}

// mirrorPods are the control plane's mirror pods, by component.
func (c *cluster) mirrorPods() (map[string]v1.Pod, error) {
	out, err := c.kubectl("get", "pods", "-n", "kube-system", "-l", "tier=control-plane", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list v1.PodList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("kubectl get pods -o json: %w", err)
	}
	pods := map[string]v1.Pod{}
	for _, p := range list.Items {
		pods[p.Labels["component"]] = p
	}
	return pods, nil
}

// waitControlPlane waits until the mirror pod of each component is
// Running and Ready, on the control-plane node, with a config hash other
// than the one in old (nil: any) and, unless since is zero, a container
// started after since (a mirror pod's status is that of the pod podsup
// runs, and the one of a pod podsup stopped while the apiserver was down
// stays until podsup writes the next).
func (c *cluster) waitControlPlane(old map[string]string, since time.Time) map[string]v1.Pod {
	c.t.Helper()
	var pods map[string]v1.Pod
	c.waitUntil(c.t, "the control plane's mirror pods Running and Ready", func() string {
		var err error
		if pods, err = c.mirrorPods(); err != nil {
			return err.Error()
		}
		var missing []string
		for _, comp := range controlPlane {
			p, ok := pods[comp]
			switch {
			case !ok:
				missing = append(missing, comp+": no mirror pod")
			case p.Name != comp+"-"+c.cp.name || p.Spec.NodeName != c.cp.name:
				missing = append(missing, fmt.Sprintf("%s: mirror pod %s on node %q", comp, p.Name, p.Spec.NodeName))
			case p.Status.Phase != v1.PodRunning || !ready(p):
				missing = append(missing, fmt.Sprintf("%s: %s, conditions %v", comp, p.Status.Phase, p.Status.Conditions))
			case old != nil && p.Annotations[configHash] == old[comp]:
				missing = append(missing, fmt.Sprintf("%s: config hash still %s", comp, old[comp]))
			case !since.IsZero() && !startedAfter(p, since):
				missing = append(missing, fmt.Sprintf("%s: no container started after %s: %+v", comp, since.Format(time.RFC3339), p.Status.ContainerStatuses))
			}
		}
		return strings.Join(missing, "; ")
	})
	return pods
}

// configHash is the annotation of a mirror pod that kubeadm upgrade apply
// waits on: the hash of its static pod's manifest.
const configHash = "kubernetes.io/config.hash"

// startedAfter reports whether the pod's one container runs, started after
// t (the status has whole seconds).
func startedAfter(p v1.Pod, t time.Time) bool {
	cs := p.Status.ContainerStatuses
	return len(cs) == 1 && cs[0].State.Running != nil && cs[0].State.Running.StartedAt.After(t)
}

func ready(p v1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == v1.PodReady {
			return cond.Status == v1.ConditionTrue
		}
	}
	return false
}

// hashes are the config hashes of the control plane's mirror pods.
func hashes(pods map[string]v1.Pod) map[string]string {
	h := map[string]string{}
	for comp, p := range pods {
		h[comp] = p.Annotations[configHash]
	}
	return h
}
