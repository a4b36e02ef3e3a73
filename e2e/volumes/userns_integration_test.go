//go:build integration

package volumes

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
)

// TestUserNamespace: a pod with hostUsers: false runs as root of a user
// namespace of its own, which is an unprivileged range of IDs on the host,
// and its volumes are still root's to read and write inside (ID-mapped
// mounts). containerd 1.x cannot do it, and the pod says so, naming the
// daemon's version.
func TestUserNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {greeting: hello}\n")
	e.Write("userns.yaml", harness.PodManifest("userns", `  hostUsers: false
  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, 'echo "map $(cat /proc/self/uid_map)"; echo "uid $(id -u)"; echo data > /data/f && echo "wrote $(stat -c %u /data/f)"; echo "read $(cat /etc/app/greeting)"; sleep 1000']
    volumeMounts: [{name: data, mountPath: /data}, {name: conf, mountPath: /etc/app}]
  volumes: [{name: data, emptyDir: {}}, {name: conf, configMap: {name: settings}}]
`))
	e.Start()
	version, err := e.Client.Version(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(strings.TrimPrefix(version.Version, "v"), "1.") {
		p := e.WaitPod("userns", "refused with the daemon's version", func(p v1.Pod) bool {
			return strings.Contains(p.Status.Message, "needs containerd 2.0 or newer; this containerd is "+version.Version)
		})
		t.Logf("containerd %s: %s", version.Version, p.Status.Message)
		return
	}
	logs := e.waitLog("userns", "c", "read hello")
	var base, size int64
	for _, line := range strings.Split(logs, "\n") {
		if _, rest, ok := strings.Cut(line, " F map "); ok {
			f := strings.Fields(rest)
			if len(f) == 3 && f[0] == "0" {
				base, _ = strconv.ParseInt(f[1], 10, 64)
				size, _ = strconv.ParseInt(f[2], 10, 64)
			}
		}
	}
	if base < 65536 || size != 65536 {
		t.Fatalf("uid_map in the container: base %d, size %d; want 65536 IDs above the host's first 65536\n%s", base, size, logs)
	}
	for _, want := range []string{" F uid 0\n", " F wrote 0\n", " F read hello\n"} {
		if !strings.Contains(logs, want) {
			t.Errorf("container output lacks %q: root inside, writing its emptyDir and reading its ConfigMap\n%s", strings.TrimSpace(want), logs)
		}
	}
	// On the host, the container's root is the range's first ID.
	pod := e.Pod("userns")
	if pod.Status.PodIP == "" {
		t.Error("the pod has no IP: its network namespace, made in its user namespace, was not set up")
	}
	status := e.procFile(pod, "c", "status")
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] != strconv.FormatInt(base, 10) {
			t.Errorf("on the host the container runs as uid %s, want %d", f[1], base)
		}
	}
	// What root of the pod wrote is root's on the host's disk: the mount
	// is ID-mapped, the files are not chowned.
	files, _ := filepath.Glob(filepath.Join(e.Root, "pods", "*", "volumes", "data", "f"))
	if len(files) != 1 {
		t.Fatalf("emptyDir file: %v", files)
	}
	var st unix.Stat_t
	if err := unix.Stat(files[0], &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 {
		t.Errorf("the file root of the pod wrote is owned by %d on the host, want 0", st.Uid)
	}
	e.Remove("userns.yaml")
	e.WaitConverged(map[string]bool{})
	e.CheckNoLeaks(map[string]bool{})
}
