//go:build integration

package volumes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/volume"
)

// logOf reads a container's logs; empty until the pod is published.
func (e *env) logOf(pod, container string) string {
	pods, _ := e.Pods()
	uid := ""
	for _, p := range pods {
		if p.Name == pod+"-node1" {
			uid = string(p.UID)
		}
	}
	if uid == "" {
		return ""
	}
	matches, _ := filepath.Glob(filepath.Join(e.Logs, fmt.Sprintf("default_%s-node1_%s", pod, uid), container, "*.log"))
	var all []byte
	for _, m := range matches {
		data, _ := os.ReadFile(m)
		all = append(all, data...)
	}
	return string(all)
}

func (e *env) waitLog(pod, container, want string) string {
	e.t.Helper()
	var got string
	harness.WaitFor(e.t, fmt.Sprintf("%s/%s logs %q", pod, container, want), func() bool {
		got = e.logOf(pod, container)
		return strings.Contains(got, want)
	})
	return got
}

// TestKubeadmHostPaths: a control-plane style pod reads certificates from
// hostPath mounts of type File, Directory and DirectoryOrCreate; a wrong
// type leaves the container waiting with the reason.
func TestKubeadmHostPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pki := t.TempDir()
	os.WriteFile(filepath.Join(pki, "ca.crt"), []byte("-----BEGIN CERTIFICATE-----test-ca"), 0o644)
	os.MkdirAll(filepath.Join(pki, "etcd"), 0o755)
	os.WriteFile(filepath.Join(pki, "etcd", "server.crt"), []byte("etcd-server-cert"), 0o644)
	data := filepath.Join(t.TempDir(), "var-lib-etcd")
	e.Write("cp.yaml", harness.PodManifest("cp", fmt.Sprintf(`  hostNetwork: true
  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, 'cat /etc/kubernetes/pki/ca.crt; echo; cat /etc/kubernetes/pki/etcd/server.crt; echo; touch /var/lib/etcd/member && echo data-ok; sleep 1000']
    volumeMounts:
    - {name: ca, mountPath: /etc/kubernetes/pki/ca.crt, readOnly: true}
    - {name: etcd-certs, mountPath: /etc/kubernetes/pki/etcd, readOnly: true}
    - {name: etcd-data, mountPath: /var/lib/etcd}
  volumes:
  - {name: ca, hostPath: {path: %s, type: File}}
  - {name: etcd-certs, hostPath: {path: %s, type: Directory}}
  - {name: etcd-data, hostPath: {path: %s, type: DirectoryOrCreate}}
`, filepath.Join(pki, "ca.crt"), filepath.Join(pki, "etcd"), data)))
	e.Write("wrong.yaml", harness.PodManifest("wrong", fmt.Sprintf(`  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sleep, "1000"]
    volumeMounts: [{name: certs, mountPath: /certs}]
  volumes:
  - {name: certs, hostPath: {path: %s, type: Directory}}
`, filepath.Join(pki, "ca.crt"))))
	e.Start()
	out := e.waitLog("cp", "c", "data-ok")
	for _, want := range []string{"stdout F -----BEGIN CERTIFICATE-----test-ca", "stdout F etcd-server-cert"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if info, err := os.Stat(filepath.Join(data, "member")); err != nil || info.IsDir() {
		t.Errorf("DirectoryOrCreate: %v", err)
	}
	p := e.WaitPod("wrong", "waiting on its volume", func(p v1.Pod) bool {
		w := harness.ContainerStatus(p, "c").State.Waiting
		return w != nil && w.Reason == "CreateContainerConfigError"
	})
	if msg := harness.ContainerStatus(p, "c").State.Waiting.Message; !strings.Contains(msg, `volume "certs": hostPath type check failed`) || !strings.Contains(msg, "is a file, not a Directory") {
		t.Errorf("message %q", msg)
	}
}

// TestEmptyDir: an emptyDir keeps its content across container restarts
// and goes with the pod.
func TestEmptyDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("counter.yaml", harness.PodManifest("counter", `  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, 'n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo run $n; [ $n -ge 2 ] && sleep 1000; exit 1']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
`))
	e.Start()
	e.waitLog("counter", "c", "stdout F run 2")
	dirs, _ := filepath.Glob(filepath.Join(e.Root, "pods", "*", "volumes", "data"))
	if len(dirs) != 1 {
		t.Fatalf("emptyDir directories %v", dirs)
	}
	e.Remove("counter.yaml")
	e.WaitConverged(map[string]bool{})
	harness.WaitFor(t, "the emptyDir removed with the pod", func() bool {
		_, err := os.Stat(dirs[0])
		return os.IsNotExist(err)
	})
}

// TestMemoryEmptyDirOverLimit: a memory-backed emptyDir written past its
// sizeLimit gets the pod evicted, with the kubelet's reason and message.
func TestMemoryEmptyDirOverLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("hog.yaml", harness.PodManifest("hog", `  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, 'dd if=/dev/zero of=/scratch/fill bs=1M count=3; echo written; sleep 1000']
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  volumes: [{name: scratch, emptyDir: {medium: Memory, sizeLimit: 2Mi}}]
`))
	e.Start()
	p := e.WaitPod("hog", "evicted", func(p v1.Pod) bool { return p.Status.Reason == "Evicted" })
	if p.Status.Phase != v1.PodFailed || !strings.Contains(p.Status.Message, `Usage of EmptyDir volume "scratch" exceeds the limit "2Mi"`) {
		t.Errorf("status: phase %s, message %q", p.Status.Phase, p.Status.Message)
	}
}

// TestConfigMapUpdate: changing a ConfigMap's file changes the mounted file
// inside the running container, without restarting it.
func TestConfigMapUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: %s}\n"
	e.Write("settings.yaml", fmt.Sprintf(cm, "slow"))
	e.Write("app.yaml", harness.PodManifest("app", `  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, 'while true; do echo "mode=$(cat /etc/app/mode)"; sleep 0.3; done']
    volumeMounts: [{name: conf, mountPath: /etc/app}]
  volumes: [{name: conf, configMap: {name: settings}}]
`))
	e.Start()
	e.waitLog("app", "c", "mode=slow")
	before := harness.ContainerStatus(e.Pod("app"), "c")
	changed := time.Now()
	e.Write("settings.yaml", fmt.Sprintf(cm, "fast"))
	e.waitLog("app", "c", "mode=fast")
	harness.Record(t, "ConfigMap change to the container seeing it", "%s", time.Since(changed).Round(10*time.Millisecond))
	after := harness.ContainerStatus(e.Pod("app"), "c")
	if after.ContainerID != before.ContainerID || after.RestartCount != 0 {
		t.Errorf("the container was restarted: %s -> %s", before.ContainerID, after.ContainerID)
	}
}

// TestSecretStaysSecret: a Secret's value reaches the container, as a file
// and as an environment variable, and appears nowhere in podsup's log, its
// API or its root directory outside tmpfs.
func TestSecretStaysSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := make([]byte, 16)
	rand.Read(b)
	secret := "s3cr3t-" + hex.EncodeToString(b)
	e.Write("secret.yaml", fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: %s}\n", secret))
	e.Write("app.yaml", harness.PodManifest("app", `  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, '[ -n "$PASSWORD" ] && [ "$PASSWORD" = "$(cat /secrets/password)" ] && echo secret-matches; sleep 1000']
    env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}]
    volumeMounts: [{name: creds, mountPath: /secrets}]
  volumes: [{name: creds, secret: {secretName: db}}]
`))
	e.Start()
	e.waitLog("app", "c", "stdout F secret-matches")
	var leaks []string
	for _, url := range []string{"/pods", "/pods/default/app-node1/status"} {
		resp, err := http.Get("http://" + e.ReadOnly + url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), secret) {
			leaks = append(leaks, "API "+url)
		}
	}
	for _, root := range []string{e.Root, e.Logs} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			var st unix.Statfs_t
			if unix.Statfs(p, &st) == nil && st.Type == unix.TMPFS_MAGIC {
				return nil // on tmpfs, where secrets belong
			}
			if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), secret) {
				leaks = append(leaks, p)
			}
			return nil
		})
	}
	if len(leaks) > 0 {
		t.Errorf("the secret value leaked into: %v", leaks)
	}
	mounted := 0
	matches, _ := filepath.Glob(filepath.Join(e.Root, "pods", "*", "volumes", "creds"))
	for _, m := range matches {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.TMPFS_MAGIC {
			mounted++
		}
	}
	if mounted != 1 {
		t.Errorf("the secret volume is not on tmpfs (%v)", matches)
	}
}

// TestDownwardAPI: env fieldRef, resourceFieldRef and a downwardAPI volume
// carry the pod's values.
func TestDownwardAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("dw.yaml", `apiVersion: v1
kind: Pod
metadata: {name: dw, labels: {app: web, tier: front}, annotations: {team: blue}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, 'env | grep ^DW_ | sort; echo "labels:"; cat /info/labels; echo "annotations:"; cat /info/annotations; echo "cpu=$(cat /info/cpu)"; echo done; sleep 1000']
    resources: {limits: {cpu: 250m, memory: 64Mi}}
    env:
    - {name: DW_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: DW_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: DW_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: DW_APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: DW_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: DW_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: DW_HOST, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: DW_MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    volumeMounts: [{name: info, mountPath: /info}]
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: cpu, resourceFieldRef: {containerName: c, resource: limits.cpu, divisor: 1m}}
`)
	e.Start()
	out := e.waitLog("dw", "c", "stdout F done")
	p := e.Pod("dw")
	for _, want := range []string{
		"DW_NAME=dw-node1", "DW_NS=default", "DW_UID=" + string(p.UID), "DW_APP=web", "DW_NODE=node1",
		"DW_IP=" + p.Status.PodIP, "DW_HOST=" + p.Status.HostIP, "DW_MEM=64",
		`app="web"`, `tier="front"`, `team="blue"`, "cpu=250",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestHostToContainerPropagation: a mount made on the host after the
// container started appears inside it, through mountPropagation.
func TestHostToContainerPropagation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	shared := t.TempDir()
	if err := unix.Mount(shared, shared, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(shared, unix.MNT_DETACH)
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(shared, "late"), 0o755)
	e.Write("prop.yaml", harness.PodManifest("prop", fmt.Sprintf(`  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, 'while true; do cat /host/late/hello 2>/dev/null && break; sleep 0.2; done; sleep 1000']
    volumeMounts: [{name: host, mountPath: /host, mountPropagation: HostToContainer}]
  volumes: [{name: host, hostPath: {path: %s}}]
`, shared)))
	e.Start()
	e.WaitPod("prop", "running", func(p v1.Pod) bool { return harness.ContainerStatus(p, "c").State.Running != nil })
	late := filepath.Join(shared, "late")
	if err := unix.Mount("tmpfs", late, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(late, unix.MNT_DETACH)
	os.WriteFile(filepath.Join(late, "hello"), []byte("mounted after the start\n"), 0o644)
	e.waitLog("prop", "c", "stdout F mounted after the start")
}

// TestImageVolume: an image volume shows the image's files read-only and
// not executable, whole and by subPath; its view and mount go with the pod.
func TestImageVolume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("img.yaml", harness.PodManifest("img", `  containers:
  - name: c
    image: podsup.test/busybox:1
    command:
    - sh
    - -c
    - |
      test -f /img/bin/busybox && echo found
      touch /img/x 2>/dev/null && echo writable || echo read-only
      /img/bin/busybox true 2>/dev/null && echo executable || echo noexec
      test -f /one/busybox && echo subpath
      `+harness.IdleCmd+`
    volumeMounts:
    - {name: img, mountPath: /img}
    - {name: img, mountPath: /one, subPath: bin}
  volumes:
  - name: img
    image: {reference: podsup.test/busybox:1, pullPolicy: IfNotPresent}
`))
	e.Start()
	names := map[string]bool{"img": true}
	e.WaitConverged(names)
	got := e.waitLog("img", "c", "subpath")
	for _, want := range []string{"found", "read-only", "noexec", "subpath"} {
		if !strings.Contains(got, "stdout F "+want) {
			t.Errorf("container output %q lacks %q", got, want)
		}
	}
	e.CheckNoLeaks(names)
	e.Remove("img.yaml")
	e.WaitConverged(map[string]bool{})
	harness.WaitFor(t, "the image volume's view removed with the pod", func() bool {
		views := 0
		_ = e.Client.SnapshotService(testenv.Snapshotter).Walk(e.Ctx, func(_ context.Context, info snapshots.Info) error {
			if strings.HasPrefix(info.Name, "imagevolume-") {
				views++
			}
			return nil
		})
		return views == 0
	})
	if mps := volume.MountsUnder(filepath.Join(e.Root, "pods")); len(mps) > 0 {
		t.Errorf("mounts left under the pods directory: %v", mps)
	}
}
