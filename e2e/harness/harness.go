//go:build integration

// Package harness runs the podsup binary against the real containerd, as a
// user does, for the end-to-end test packages below e2e/. Each test gets an
// Env of its own: a containerd namespace, manifest, root and log
// directories, ports, an admin socket and, unless it asks for another, a
// CNI bridge network no other test uses. Tests of different packages and
// parallel tests of one package therefore never share state, and every
// wait is a condition polled within Patience.
package harness

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/cni"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

// Patience bounds every wait on podsup, containerd, runc or the kernel:
// generous, so that a machine whose cores are all busy never fails a test,
// and finite, so that a condition that never holds still fails. How fast
// things happen is measured and recorded (Record), never asserted.
const Patience = 3 * time.Minute

// binary is the podsup under test: PODSUP_E2E_BINARY when hack/test.sh
// built it once for every package, else built by Main.
var binary string

// Binary is the path of the podsup under test.
func Binary() string { return binary }

var release struct {
	once sync.Once
	path string
	err  error
}

// ReleaseBinary is podsup as it is shipped: without the race detector,
// static and stripped. It is PODSUP_E2E_RELEASE_BINARY when hack/test.sh
// built it, else built once for the test process. A test that parses
// megabytes of hostile input uses it: the race detector makes that take
// minutes of CPU and checks no concurrency, and the memory podsup keeps is
// only a figure for a release build.
func ReleaseBinary(t *testing.T) string {
	t.Helper()
	if path := os.Getenv("PODSUP_E2E_RELEASE_BINARY"); path != "" {
		return path
	}
	release.once.Do(func() {
		release.path = filepath.Join(os.TempDir(), fmt.Sprintf("podsup-release-%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-ldflags", "-s -w", "-o", release.path, "github.com/podsup/podsup")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			release.err = fmt.Errorf("build podsup: %w\n%s", err, out)
		}
	})
	if release.err != nil {
		t.Fatal(release.err)
	}
	return release.path
}

// Main runs an e2e package's tests: it builds podsup with the race
// detector unless PODSUP_E2E_BINARY names one already built, runs the
// tests, and writes the figures they recorded (Record).
func Main(m *testing.M) {
	dir := ""
	if binary = os.Getenv("PODSUP_E2E_BINARY"); binary == "" {
		var err error
		if dir, err = os.MkdirTemp("", "podsup-e2e-"); err != nil {
			panic(err)
		}
		binary = filepath.Join(dir, "podsup")
		out, err := exec.Command("go", "build", "-race", "-o", binary, "github.com/podsup/podsup").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build podsup: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	summary.write()
	if dir != "" {
		os.RemoveAll(dir)
	}
	if release.path != "" {
		os.Remove(release.path)
	}
	os.Exit(code)
}

// Env is one podsup installation: its manifest, root and log directories,
// its containerd namespace, and the addresses of its APIs.
type Env struct {
	t         *testing.T
	Address   string // containerd's socket
	Client    *containerd.Client
	Ctx       context.Context // in the namespace NS
	NS        string
	Manifests string
	Root      string
	Logs      string
	ReadOnly  string   // the read-only port's address
	Healthz   string   // the healthz port's address
	Secure    string   // the authenticated API's address
	Socket    string   // the admin socket
	Network   *Network // the CNI network podsup is started with, if any
	Binary    string   // the podsup to run: Binary() unless the test chose another
	Proc      *exec.Cmd
	ProcLog   *os.File
	runs      int
	networks  []*Network // released when the test ends
}

// NewEnv is an Env on the machine's containerd.
func NewEnv(t *testing.T) *Env {
	t.Helper()
	return NewEnvWith(t, testenv.Address(), testenv.Client(t))
}

// NewEnvWith is an Env on the containerd at address.
func NewEnvWith(t *testing.T, address string, client *containerd.Client) *Env {
	t.Helper()
	ctx, ns := testenv.Namespace(t, client)
	testenv.ImportBusybox(t, ctx, client)
	e := &Env{t: t, Address: address, Client: client, Ctx: ctx, NS: ns,
		Manifests: t.TempDir(), Root: t.TempDir(), Logs: t.TempDir(), ReadOnly: FreeAddr(t), Healthz: FreeAddr(t), Secure: FreeAddr(t), Socket: shortSocket(t)}
	t.Cleanup(func() {
		e.Stop()
		if t.Failed() || os.Getenv("PODSUP_E2E_KEEP_LOGS") != "" {
			e.keepLogs()
		}
		e.releaseNetworks()
		// Pods still running hold mounts in the root dir (/dev/shm, network
		// namespaces, in-memory volumes): unmount them all.
		if err := volume.RemoveAll(e.Root); err != nil {
			t.Logf("clean %s: %v", e.Root, err)
		}
		for _, n := range e.networks {
			n.release()
		}
	})
	return e
}

// releaseNetworks runs CNI DEL, through podsup's cni package, for the
// sandboxes still there when the test ends: the namespace's purge kills them
// without, and the bridge plugin's iptables rules would outlive the test.
func (e *Env) releaseNetworks() {
	cs, err := e.Client.Containers(e.Ctx)
	if err != nil {
		return
	}
	opts := []cni.Option{cni.WithRootDir(e.Root), cni.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	if e.Network != nil {
		opts = append(opts, cni.WithConfDir(e.Network.confDir))
	}
	m, err := cni.New(opts...)
	if err != nil {
		e.t.Logf("release pod networks: %v", err)
		return
	}
	for _, c := range cs {
		labels, err := c.Labels(e.Ctx)
		if err == nil && labels[runtime.LabelKind] == "sandbox" && labels[runtime.LabelNetNS] != "" {
			if err := m.TearDown(e.Ctx, c.ID()); err != nil {
				e.t.Logf("release the network of %s: %v", c.ID(), err)
			}
		}
	}
}

// keepLogs copies podsup's logs out of the test's temporary directories
// (on failure, or always with PODSUP_E2E_KEEP_LOGS set),
// which are about to go, so a failure can be read afterwards.
func (e *Env) keepLogs() {
	dir := filepath.Join(os.TempDir(), "podsup-e2e-failures", strings.ReplaceAll(e.t.Name(), "/", "_"))
	os.MkdirAll(dir, 0o755)
	logs, _ := filepath.Glob(filepath.Join(e.Root, "podsup-*.log"))
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

// FreeAddr is a loopback address with a port no other test gets.
func FreeAddr(t *testing.T) string { return testenv.FreeAddr(t) }

// Start runs podsup in the background. Unless the test made a network of
// its own (NewNetwork) or names a CNI configuration directory in extra,
// podsup gets a fresh bridge network: podsup's built-in podsup0 is one per
// machine, and parallel tests must not share it.
func (e *Env) Start(extra ...string) {
	e.t.Helper()
	if e.Network == nil && !slices.Contains(extra, "--cni-conf-dir") {
		NewNetwork(e.t, e, 24)
	}
	e.runs++
	logFile, err := os.Create(filepath.Join(e.Root, fmt.Sprintf("podsup-%d.log", e.runs)))
	if err != nil {
		e.t.Fatal(err)
	}
	args := []string{"run", "--manifests", e.Manifests, "--root-dir", e.Root, "--log-dir", e.Logs,
		"--containerd-address", e.Address, "--containerd-namespace", e.NS, "--node-name", "node1",
		"--read-only-address", e.ReadOnly, "--healthz-address", e.Healthz,
		"--address", e.Secure, "--admin-socket", e.Socket, "--file-check-frequency", "2s", "-v", "1"}
	if e.Network != nil && !slices.Contains(extra, "--cni-conf-dir") {
		args = append(args, e.Network.Args()...)
	}
	e.Proc = exec.Command(cmp.Or(e.Binary, binary), append(args, extra...)...)
	e.Proc.Stdout, e.Proc.Stderr = logFile, logFile
	e.ProcLog = logFile
	if err := e.Proc.Start(); err != nil {
		e.t.Fatal(err)
	}
}

// Kill SIGKILLs podsup, as a crash would.
func (e *Env) Kill() {
	if e.Proc != nil {
		e.Proc.Process.Kill()
		e.Proc.Wait()
		e.Proc = nil
	}
}

// Stop stops podsup as a service manager would; its pods keep running.
func (e *Env) Stop() {
	if e.Proc == nil {
		return
	}
	e.Proc.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { e.Proc.Wait(); close(done) }() // ends when podsup does; Kill below makes sure it does
	select {
	case <-done:
	case <-time.After(Patience):
		e.t.Errorf("podsup did not stop within %s of SIGTERM", Patience)
		e.Proc.Process.Kill()
		<-done
	}
	e.Proc = nil
}

// Write writes a manifest into the manifest directory.
func (e *Env) Write(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.Manifests, name), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// Remove removes a manifest from the manifest directory.
func (e *Env) Remove(name string) {
	e.t.Helper()
	if err := os.Remove(filepath.Join(e.Manifests, name)); err != nil {
		e.t.Fatal(err)
	}
}

// Pods reads /pods from the read-only port.
func (e *Env) Pods() ([]v1.Pod, error) {
	resp, err := http.Get("http://" + e.ReadOnly + "/pods")
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

// Pod is the published pod named name (without the node suffix); the test
// fails if there is none.
func (e *Env) Pod(name string) v1.Pod {
	e.t.Helper()
	pods, err := e.Pods()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range pods {
		if p.Name == name+"-node1" {
			return p
		}
	}
	e.t.Fatalf("pod %s not published", name)
	return v1.Pod{}
}

// Healthy reports /healthz.
func (e *Env) Healthy() bool {
	return e.unhealthy() == ""
}

// WaitHealthy waits until /healthz answers ok, and fails the test with the
// last answer if it does not within Patience. A single look would fail on
// a loaded machine when one containerd call of the check is slow.
func (e *Env) WaitHealthy(what string) {
	e.t.Helper()
	WaitUntil(e.t, what, e.unhealthy)
}

// unhealthy is why /healthz is not ok, from its verbose answer; "" when it
// is.
func (e *Env) unhealthy() string {
	resp, err := http.Get("http://" + e.Healthz + "/healthz?verbose")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
}

// NetnsFiles counts the pod network namespaces pinned under the root dir.
func (e *Env) NetnsFiles() int {
	entries, _ := os.ReadDir(filepath.Join(e.Root, "netns"))
	return len(entries)
}

// TaskInfo is a running task as containerd reports it.
type TaskInfo struct {
	ID  string
	PID uint32
}

// Tasks lists the namespace's running tasks by container ID.
func (e *Env) Tasks() map[string]TaskInfo {
	e.t.Helper()
	cs, err := e.Client.Containers(e.Ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]TaskInfo{}
	for _, c := range cs {
		task, err := c.Task(e.Ctx, nil)
		if err != nil {
			continue
		}
		st, err := task.Status(e.Ctx)
		if err == nil && st.Status == containerd.Running {
			out[c.ID()] = TaskInfo{ID: c.ID(), PID: task.Pid()}
		}
	}
	return out
}
