//go:build integration

package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
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
	syncs   *syncCounter
}

func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	client := testenv.Client(t)
	ctx, ns := testenv.Namespace(t, client)
	testenv.ImportBusybox(t, ctx, client)
	h := &harness{t: t, client: client, ctx: ctx, ns: ns, deltas: make(chan manifest.Delta),
		logDir: t.TempDir(), rootDir: t.TempDir(), syncs: &syncCounter{}, merger: manifest.NewMerger([]string{manifest.SourceFile}, clock.RealClock{})}
	log := slog.New(slog.NewTextHandler(testLogWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	var sup *Supervisor
	rt, err := runtime.New(testenv.Address(), runtime.WithNamespace(ns), runtime.WithRootDir(h.rootDir), runtime.WithLogDir(h.logDir),
		runtime.WithLogger(log), runtime.WithLogRotation(4096, 3), runtime.WithExitHandler(func(k string) { sup.Wake(k) }))
	if err != nil {
		t.Fatal(err)
	}
	sup = New(rt, append([]Option{WithBackoff(fastBackoff), WithLogger(log), WithNode("192.0.2.10", nil), WithMetrics(h.syncs),
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

// waitLimit bounds every wait on containerd, runc and the containers: far
// longer than anything takes on a machine whose cores are all busy, so a
// test fails only when what it waits for never happens.
const waitLimit = 3 * time.Minute

// eventually polls cond until it holds, and fails the test after waitLimit
// with describe's account of what it waited for.
func eventually(t *testing.T, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", waitLimit, describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPod waits until cond holds for the pod's published status.
func (h *harness) waitPod(key string, what string, cond func(*v1.Pod) bool) *v1.Pod {
	h.t.Helper()
	var last *v1.Pod
	eventually(h.t, func() bool {
		last = h.sup.Pod(key)
		return last != nil && cond(last)
	}, func() string { return fmt.Sprintf("pod %s %s; last status: %s", key, what, summarize(last)) })
	return last
}

// waitGone waits until containerd holds nothing of the pod.
func (h *harness) waitGone(key string) {
	h.t.Helper()
	eventually(h.t, func() bool {
		st, err := h.rt.PodState(context.Background(), key)
		return err == nil && len(st.Sandboxes)+len(st.Containers) == 0 && h.sup.Pod(key) == nil
	}, func() string { return fmt.Sprintf("pod %s gone", key) })
}

// syncCounter counts the supervisor's finished pod syncs.
type syncCounter struct{ n atomic.Int64 }

func (c *syncCounter) SyncDone(time.Duration, error) { c.n.Add(1) }
func (c *syncCounter) ImagePull(error)               {}
func (c *syncCounter) Evicted()                      {}

// syncAgain wakes the pod's worker twice and waits each time for a sync to
// finish: after the second, a sync that began after the call has finished,
// so whatever the supervisor does about the pod's present state is done.
func (h *harness) syncAgain(key string) {
	h.t.Helper()
	for range 2 {
		n := h.syncs.n.Load()
		h.sup.Wake(key)
		eventually(h.t, func() bool { return h.syncs.n.Load() > n }, func() string { return "pod " + key + " synced" })
	}
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
