//go:build integration

// Package e2e runs the podsup binary against the real containerd, the way a
// user does, and checks what it leaves in containerd, on disk and in the
// cgroup tree.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/snapshots"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/cni"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

// binary is the podsup built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "podsup-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "podsup")
	out, err := exec.Command("go", "build", "-race", "-o", binary, "..").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build podsup: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	// go test shows a passing package's output only with -v: the table
	// also goes to the file hack/test.sh prints at the end.
	summary.print(os.Stdout)
	if path := os.Getenv("PODSUP_SUMMARY_FILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			summary.print(f)
			f.Close()
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one podsup installation: its manifest, root and log directories,
// its containerd namespace, and the addresses of its APIs.
type env struct {
	t         *testing.T
	address   string // containerd's socket
	client    *containerd.Client
	ctx       context.Context
	ns        string
	manifests string
	root      string
	logs      string
	readOnly  string
	healthz   string
	secure    string       // the authenticated API's address
	socket    string       // the admin socket
	network   *testNetwork // the test's own CNI network, if any
	proc      *exec.Cmd
	procLog   *os.File
	runs      int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	client := testenv.Client(t)
	return newEnvWith(t, testenv.Address(), client)
}

func newEnvWith(t *testing.T, address string, client *containerd.Client) *env {
	t.Helper()
	ctx, ns := testenv.Namespace(t, client)
	testenv.ImportBusybox(t, ctx, client)
	e := &env{t: t, address: address, client: client, ctx: ctx, ns: ns,
		manifests: t.TempDir(), root: t.TempDir(), logs: t.TempDir(), readOnly: freeAddr(t), healthz: freeAddr(t), secure: freeAddr(t), socket: shortSocket(t)}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			e.keepLogs()
		}
		e.releaseNetworks()
		// Pods still running hold mounts in the root dir (/dev/shm, network
		// namespaces, in-memory volumes): unmount them all.
		if err := volume.RemoveAll(e.root); err != nil {
			t.Logf("clean %s: %v", e.root, err)
		}
	})
	return e
}

// releaseNetworks runs CNI DEL, through podsup's cni package, for the
// sandboxes still there when the test ends: the namespace's purge kills them
// without, and the bridge plugin's iptables rules, named after the sandbox
// IDs that are the same for a pod of the same name in every test, would
// outlive the test and make a later test's DEL of that pod fail.
func (e *env) releaseNetworks() {
	cs, err := e.client.Containers(e.ctx)
	if err != nil {
		return
	}
	opts := []cni.Option{cni.WithRootDir(e.root), cni.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if e.network != nil {
		opts = append(opts, cni.WithConfDir(e.network.confDir))
	}
	m, err := cni.New(opts...)
	if err != nil {
		e.t.Logf("release pod networks: %v", err)
		return
	}
	for _, c := range cs {
		labels, err := c.Labels(e.ctx)
		if err == nil && labels[runtime.LabelKind] == "sandbox" && labels[runtime.LabelNetNS] != "" {
			if err := m.TearDown(e.ctx, c.ID()); err != nil {
				e.t.Logf("release the network of %s: %v", c.ID(), err)
			}
		}
	}
}

// keepLogs copies podsup's logs out of the test's temporary directories,
// which are about to go, so a failure can be read afterwards.
func (e *env) keepLogs() {
	dir := filepath.Join(os.TempDir(), "podsup-e2e-failures", strings.ReplaceAll(e.t.Name(), "/", "_"))
	os.MkdirAll(dir, 0o755)
	logs, _ := filepath.Glob(filepath.Join(e.root, "podsup-*.log"))
	for _, l := range logs {
		if data, err := os.ReadFile(l); err == nil {
			os.WriteFile(filepath.Join(dir, filepath.Base(l)), data, 0o644)
		}
	}
	e.t.Logf("podsup logs kept in %s", dir)
}

// shortSocket is a path for a unix socket, whose length is limited to 107
// bytes: test temporary directories can be longer.
func shortSocket(t *testing.T) string {
	dir, err := os.MkdirTemp("", "psup")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "podsup.sock")
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs podsup in the background.
func (e *env) start(extra ...string) {
	e.t.Helper()
	e.runs++
	logFile, err := os.Create(filepath.Join(e.root, fmt.Sprintf("podsup-%d.log", e.runs)))
	if err != nil {
		e.t.Fatal(err)
	}
	args := append([]string{"run", "--manifests", e.manifests, "--root-dir", e.root, "--log-dir", e.logs,
		"--containerd-address", e.address, "--containerd-namespace", e.ns, "--node-name", "node1",
		"--read-only-address", e.readOnly, "--healthz-address", e.healthz,
		"--address", e.secure, "--admin-socket", e.socket, "--file-check-frequency", "2s", "-v", "1"}, extra...)
	e.proc = exec.Command(binary, args...)
	e.proc.Stdout, e.proc.Stderr = logFile, logFile
	e.procLog = logFile
	if err := e.proc.Start(); err != nil {
		e.t.Fatal(err)
	}
}

// kill SIGKILLs podsup, as a crash would.
func (e *env) kill() {
	if e.proc != nil {
		e.proc.Process.Kill()
		e.proc.Wait()
		e.proc = nil
	}
}

// stop stops podsup as a service manager would; its pods keep running.
func (e *env) stop() {
	if e.proc != nil {
		e.proc.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { e.proc.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			e.t.Errorf("podsup did not stop within 20s of SIGTERM")
			e.proc.Process.Kill()
			<-done
		}
		e.proc = nil
	}
}

func (e *env) write(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.manifests, name), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) remove(name string) {
	e.t.Helper()
	if err := os.Remove(filepath.Join(e.manifests, name)); err != nil {
		e.t.Fatal(err)
	}
}

// pods reads /pods from the read-only port.
func (e *env) pods() ([]v1.Pod, error) {
	resp, err := http.Get("http://" + e.readOnly + "/pods")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list v1.PodList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// healthy reports /healthz.
func (e *env) healthy() bool {
	resp, err := http.Get("http://" + e.healthz + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// converged reports whether exactly the named pods are published, each
// Running with every container running and ready.
func converged(pods []v1.Pod, names map[string]bool) (bool, string) {
	if len(pods) != len(names) {
		return false, fmt.Sprintf("%d pods published, want %d", len(pods), len(names))
	}
	for _, p := range pods {
		if !names[strings.TrimSuffix(p.Name, "-node1")] {
			return false, "unexpected pod " + p.Name
		}
		if p.Status.Phase != v1.PodRunning {
			return false, p.Name + " is " + string(p.Status.Phase)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil || !cs.Ready {
				return false, fmt.Sprintf("%s/%s not running and ready", p.Name, cs.Name)
			}
		}
	}
	return true, ""
}

// waitConverged waits until exactly the named pods run, and says how long
// it took.
func (e *env) waitConverged(names map[string]bool, timeout time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	why := "no answer"
	for time.Since(start) < timeout {
		if pods, err := e.pods(); err == nil {
			var ok bool
			if ok, why = converged(pods, names); ok {
				return time.Since(start)
			}
		} else {
			why = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("not converged within %s: %s\npodsup log: %s", timeout, why, e.procLog.Name())
	return 0
}

// waitRestarts waits until a container's restart count reaches n.
func (e *env) waitRestarts(pod, container string, n int32, timeout time.Duration) {
	e.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pods, _ := e.pods()
		for _, p := range pods {
			if p.Name != pod+"-node1" {
				continue
			}
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == container && cs.RestartCount >= n && cs.State.Running != nil {
					return
				}
			}
		}
	}
	e.t.Fatalf("%s/%s did not reach %d restarts within %s", pod, container, n, timeout)
}

// taskInfo is a running task as containerd reports it.
type taskInfo struct {
	id  string
	pid uint32
}

// tasks lists the namespace's running tasks by container ID.
func (e *env) tasks() map[string]taskInfo {
	e.t.Helper()
	cs, err := e.client.Containers(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]taskInfo{}
	for _, c := range cs {
		task, err := c.Task(e.ctx, nil)
		if err != nil {
			continue
		}
		st, err := task.Status(e.ctx)
		if err == nil && st.Status == containerd.Running {
			out[c.ID()] = taskInfo{id: c.ID(), pid: task.Pid()}
		}
	}
	return out
}

// checkNoLeaks waits until containerd, the disk and the cgroup tree hold
// exactly what the desired pods need: one sandbox and one instance per
// container, every task and snapshot belonging to one of them, one pod
// directory per pod. Pods being removed get their grace period to go.
func (e *env) checkNoLeaks(names map[string]bool) {
	e.t.Helper()
	for _, l := range e.leaksAfter(names, 20*time.Second) {
		e.t.Error(l)
	}
}

// leaksAfter waits up to timeout for leaks to find nothing, and returns
// what it found last.
func (e *env) leaksAfter(names map[string]bool, timeout time.Duration) []string {
	var found []string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if found = e.leaks(names); len(found) == 0 {
			return nil
		}
	}
	return found
}

// leaks lists everything that should not be there.
func (e *env) leaks(names map[string]bool) []string {
	var leaks []string
	errorf := func(format string, args ...any) { leaks = append(leaks, fmt.Sprintf(format, args...)) }
	cs, err := e.client.Containers(e.ctx)
	if err != nil {
		return []string{err.Error()}
	}
	ids := map[string]bool{}
	perPod := map[string]map[string]int{}
	for _, c := range cs {
		labels, err := c.Labels(e.ctx)
		if err != nil {
			errorf("%v", err)
			continue
		}
		ids[c.ID()] = true
		key := labels[runtime.LabelPodKey]
		_, name, _ := strings.Cut(key, "/")
		if !names[strings.TrimSuffix(name, "-node1")] {
			errorf("container %s of undesired pod %s", c.ID(), key)
			continue
		}
		if perPod[key] == nil {
			perPod[key] = map[string]int{}
		}
		what := labels[runtime.LabelName]
		if labels[runtime.LabelKind] == "sandbox" {
			what = "sandbox"
		}
		perPod[key][what]++
		task, err := c.Task(e.ctx, nil)
		if err == nil {
			st, _ := task.Status(e.ctx)
			if st.Status != containerd.Running {
				errorf("task of %s is %s", c.ID(), st.Status)
			}
		}
	}
	for key, counts := range perPod {
		for what, n := range counts {
			if n != 1 {
				errorf("pod %s has %d instances of %s, want 1", key, n, what)
			}
		}
	}
	if len(perPod) != len(names) {
		errorf("containerd holds %d pods, want %d", len(perPod), len(names))
	}
	sn := e.client.SnapshotService(testenv.Snapshotter)
	err = sn.Walk(e.ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted && !ids[info.Name] {
			errorf("snapshot %s belongs to no container", info.Name)
		}
		return nil
	})
	if err != nil {
		errorf("%v", err)
	}
	dirs, _ := os.ReadDir(filepath.Join(e.root, "pods"))
	if len(dirs) != len(names) {
		var found []string
		for _, d := range dirs {
			found = append(found, d.Name())
		}
		errorf("%d pod directories %v, want %d", len(dirs), found, len(names))
	}
	cgroups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/memory", e.ns, "*", "pod*"))
	if len(cgroups) > len(names) {
		errorf("%d pod cgroups for %d pods: %v", len(cgroups), len(names), cgroups)
	}
	e.hostLeaks(names, cs, errorf)
	return leaks
}

func sleeperPod(name, cmd string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: main, image: %s, command: [sh, -c, %q]}
  - {name: side, image: %s, command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.5; done"]}
`, name, testenv.BusyboxRef, cmd, testenv.BusyboxRef)
}
