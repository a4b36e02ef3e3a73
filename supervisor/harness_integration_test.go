//go:build integration

package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

// fastBackoff keeps crash-loop tests short while keeping the doubling.
var fastBackoff = BackoffPolicy{Initial: time.Second, Max: 4 * time.Second, ResetAfter: 10 * time.Minute}

// harness runs a supervisor on the real containerd, in a namespace of its
// own, fed through the real merger.
type harness struct {
	t       *testing.T
	client  *containerd.Client
	ctx     context.Context // in the test's containerd namespace
	ns      string
	rt      *runtime.Runtime
	sup     *Supervisor
	merger  *manifest.Merger
	deltas  chan manifest.Delta
	logDir  string
	rootDir string
}

func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	client := testenv.Client(t)
	ctx, ns := testenv.Namespace(t, client)
	testenv.ImportBusybox(t, ctx, client)
	h := &harness{t: t, client: client, ctx: ctx, ns: ns, deltas: make(chan manifest.Delta),
		logDir: t.TempDir(), rootDir: t.TempDir(), merger: manifest.NewMerger([]string{manifest.SourceFile}, clock.RealClock{})}
	log := slog.New(slog.NewTextHandler(testLogWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	var sup *Supervisor
	rt, err := runtime.New(testenv.Address(), runtime.WithNamespace(ns), runtime.WithRootDir(h.rootDir), runtime.WithLogDir(h.logDir),
		runtime.WithLogger(log), runtime.WithLogRotation(4096, 3), runtime.WithExitHandler(func(k string) { sup.Wake(k) }))
	if err != nil {
		t.Fatal(err)
	}
	sup = New(rt, append([]Option{WithBackoff(fastBackoff), WithLogger(log), WithNode("192.0.2.10", nil),
		WithVolumes(volume.New(rt.PodDir, volume.WithLogger(log)))}, opts...)...)
	h.rt, h.sup = rt, sup
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sup.Run(runCtx, h.deltas)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		dirs, _ := rt.PodDirs()
		for dir := range dirs {
			rt.RemovePodDir(dir) // unmounts /dev/shm so the temp dir can go
		}
		rt.Close()
	})
	return h
}

// testLogWriter sends logs to the test log when -v, else nowhere.
func testLogWriter(t *testing.T) io.Writer {
	if testing.Verbose() && os.Getenv("PODSUP_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}

// declare makes the given manifests the whole desired state.
func (h *harness) declare(manifests ...string) {
	h.t.Helper()
	var pods []*v1.Pod
	for i, m := range manifests {
		objs, err := manifest.Parse(fmt.Sprintf("test-%d.yaml", i), []byte(m), manifest.Static{NodeName: "node1", Source: manifest.SourceFile})
		if err != nil {
			h.t.Fatal(err)
		}
		pods = append(pods, objs.Pods...)
	}
	h.deltas <- h.merger.Merge(manifest.Update{Source: manifest.SourceFile, Pods: pods})
}

// waitPod waits until cond holds for the pod's published status.
func (h *harness) waitPod(key string, timeout time.Duration, what string, cond func(*v1.Pod) bool) *v1.Pod {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *v1.Pod
	for time.Now().Before(deadline) {
		if p := h.sup.Pod(key); p != nil {
			last = p
			if cond(p) {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("pod %s: not %s within %s; last status: %s", key, what, timeout, summarize(last))
	return nil
}

// waitGone waits until containerd holds nothing of the pod.
func (h *harness) waitGone(key string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := h.rt.PodState(context.Background(), key)
		if err == nil && len(st.Sandboxes)+len(st.Containers) == 0 && h.sup.Pod(key) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("pod %s still present after %s", key, timeout)
}

func (h *harness) state(key string) *runtime.PodState {
	h.t.Helper()
	st, err := h.rt.PodState(context.Background(), key)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func summarize(p *v1.Pod) string {
	if p == nil {
		return "none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s reason=%s", p.Status.Phase, p.Status.Reason)
	for _, cs := range append(append([]v1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v", cs.Name, cs.RestartCount, cs.Ready)
		switch {
		case cs.State.Running != nil:
			b.WriteString(" running")
		case cs.State.Waiting != nil:
			fmt.Fprintf(&b, " waiting %s %q", cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			fmt.Fprintf(&b, " terminated %s(%d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		}
		b.WriteString("]")
	}
	return b.String()
}

func containerStatusOf(p *v1.Pod, name string) v1.ContainerStatus {
	for _, cs := range append(append([]v1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.Name == name {
			return cs
		}
	}
	return v1.ContainerStatus{}
}

func running(p *v1.Pod, names ...string) bool {
	for _, n := range names {
		if containerStatusOf(p, n).State.Running == nil {
			return false
		}
	}
	return true
}

// podYAML is a pod of busybox containers, each "name: command".
func podYAML(name string, extra string, containers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  terminationGracePeriodSeconds: 2\n%s  containers:\n", name, extra)
	for _, c := range containers {
		n, cmd, _ := strings.Cut(c, ": ")
		fmt.Fprintf(&b, "  - name: %s\n    image: %s\n    command: [sh, -c, %q]\n", n, testenv.BusyboxRef, cmd)
	}
	return b.String()
}
