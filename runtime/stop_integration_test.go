//go:build integration

package runtime_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/runtime"
)

const stopPod = `apiVersion: v1
kind: Pod
metadata: {name: stop}
spec:
  containers:
  - {name: stubborn, image: podsup.test/busybox:1, command: [sh, -c, "trap 'echo TERM ignored' TERM; echo ready; while true; do sleep 0.1; done"]}
  - {name: polite, image: podsup.test/busybox:1, command: [sh, -c, "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"]}
`

// TestStopContainerGracePeriod stops real containers on a fake clock: one
// that obeys SIGTERM stops without any time passing; one that ignores it
// keeps running, however long the test waits, until its grace period is
// over on the runtime's clock, and is then SIGKILLed.
func TestStopContainerGracePeriod(t *testing.T) {
	client := testenv.Client(t)
	ctx, ns := testenv.Namespace(t, client)
	testenv.ImportBusybox(t, ctx, client)
	clk := &afterClock{FakeClock: clocktesting.NewFakeClock(time.Now()), waits: make(chan time.Duration, 100)}
	rt, err := runtime.New(testenv.Address(), runtime.WithNamespace(ns), runtime.WithRootDir(t.TempDir()), runtime.WithLogDir(t.TempDir()),
		runtime.WithClock(clk), runtime.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dirs, _ := rt.PodDirs()
		for dir := range dirs {
			rt.RemovePodDir(dir) // unmounts /dev/shm so the temp dir can go
		}
		rt.Close()
	})
	objs, err := manifest.Parse("stop.yaml", []byte(stopPod), manifest.Static{NodeName: "node1", Source: manifest.SourceFile})
	if err != nil {
		t.Fatal(err)
	}
	pod := objs.Pods[0]
	sb, err := rt.RunSandbox(ctx, pod, runtime.SandboxConfig{Hash: "test"})
	if err != nil {
		t.Fatal(err)
	}
	started := map[string]*runtime.Container{}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if started[c.Name], err = rt.StartContainer(ctx, &runtime.ContainerConfig{Pod: pod, Container: c, Sandbox: sb, Hash: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	// Each has set its trap once it says it is ready.
	for _, c := range started {
		waitLog(t, c.LogPath, "ready")
	}
	stop := func(name string, grace time.Duration) <-chan error {
		done := make(chan error, 1)
		go func() { done <- rt.StopContainer(ctx, started[name], grace) }()
		return done
	}

	select {
	case err := <-stop("polite", time.Hour):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testenv.StartLimit):
		t.Fatalf("a container that exits on SIGTERM was not stopped within %s, with an hour of grace and a clock that stands still", testenv.StartLimit)
	}

	done := stop("stubborn", 30*time.Second)
	waitLog(t, started["stubborn"].LogPath, "TERM ignored")
	clk.waitFor(t, 30*time.Second) // the stop waits out the grace period
	clk.Step(30*time.Second - time.Nanosecond)
	select {
	case err := <-done:
		t.Fatalf("a container that ignores SIGTERM stopped before its grace period was over: %v", err)
	default:
	}
	if c := container(t, rt, "stubborn"); c.State != runtime.StateRunning {
		t.Fatalf("stubborn is %s before its grace period is over", c.State)
	}
	clk.Step(time.Nanosecond)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testenv.StartLimit):
		t.Fatalf("a container that ignores SIGTERM was not stopped within %s of the end of its grace period", testenv.StartLimit)
	}

	for name, want := range map[string]int32{"polite": 0, "stubborn": 137} {
		if c := container(t, rt, name); c.State != runtime.StateExited || c.Exit.ExitCode != want {
			t.Errorf("%s: %s, %+v; want exited with %d", name, c.State, c.Exit, want)
		}
	}
}

// afterClock is a fake clock that tells which waits were asked of it.
type afterClock struct {
	*clocktesting.FakeClock
	waits chan time.Duration // buffered; a full one drops
}

func (c *afterClock) After(d time.Duration) <-chan time.Time {
	ch := c.FakeClock.After(d)
	select {
	case c.waits <- d:
	default:
	}
	return ch
}

// waitFor waits until a wait of d has begun on the clock.
func (c *afterClock) waitFor(t *testing.T, d time.Duration) {
	t.Helper()
	timeout := time.After(testenv.StartLimit)
	for {
		select {
		case got := <-c.waits:
			if got == d {
				return
			}
		case <-timeout:
			t.Fatalf("no wait of %s began on the runtime's clock within %s", d, testenv.StartLimit)
		}
	}
}

// container returns the observed instance of the named container.
func container(t *testing.T, rt *runtime.Runtime, name string) *runtime.Container {
	t.Helper()
	st, err := rt.PodState(context.Background(), "default/stop-node1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return nil
}

// waitLog waits until a container's log holds want.
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	var data []byte
	for deadline := time.Now().Add(testenv.StartLimit); !strings.Contains(string(data), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %s: %q", path, want, testenv.StartLimit, data)
		}
		data, _ = os.ReadFile(path)
	}
}
