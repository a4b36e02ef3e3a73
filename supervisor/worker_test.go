package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
)

// fakeRuntime is containerd as the supervisor sees it, in memory: what the
// supervisor starts runs until the test makes it exit, and every time is
// the fake clock's.
type fakeRuntime struct {
	clk *clocktesting.FakeClock

	mu         sync.Mutex
	sandboxes  []*runtime.Sandbox // of testKey, newest first
	containers []*runtime.Container
	stops      []stopCall
	starts     int // StartContainer calls
	failStarts int // how many of the next StartContainer calls fail
	// removals are the StopSandbox, RemoveContainer and RemoveSandbox
	// calls, in order, by the container's name or "sandbox".
	removals []string
	// sandboxTries are the RunSandbox calls, by the network namespace
	// they were given.
	sandboxTries []string
	// failSandbox, if set, fails the next RunSandbox before it awaits the
	// network, as a pause task made in a namespace that went fails.
	failSandbox error
	// holdRemovals, if set, holds each RemoveContainer, once recorded in
	// removals, until it is closed.
	holdRemovals chan struct{}
}

// stopCall is one StopContainer: which container, with what grace period.
type stopCall struct {
	name  string
	grace time.Duration
}

var _ Runtime = (*fakeRuntime)(nil)

func (f *fakeRuntime) PodState(ctx context.Context, key string) (*runtime.PodState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &runtime.PodState{Key: key}
	if key != testKey {
		return st, nil
	}
	for _, sb := range f.sandboxes {
		c := *sb
		st.Sandboxes = append(st.Sandboxes, &c)
	}
	for _, ct := range f.containers {
		c := *ct
		st.Containers = append(st.Containers, &c)
	}
	return st, nil
}

func (f *fakeRuntime) ListPods(ctx context.Context) (map[string]*runtime.PodState, error) {
	st, _ := f.PodState(ctx, testKey)
	if len(st.Sandboxes)+len(st.Containers) == 0 {
		return map[string]*runtime.PodState{}, nil
	}
	return map[string]*runtime.PodState{testKey: st}, nil
}

func (f *fakeRuntime) UserNS(context.Context, *v1.Pod) (*specs.LinuxIDMapping, error) {
	return nil, nil
}

func (f *fakeRuntime) RunSandbox(ctx context.Context, pod *v1.Pod, cfg runtime.SandboxConfig) (*runtime.Sandbox, error) {
	f.mu.Lock()
	f.sandboxTries = append(f.sandboxTries, cfg.NetNS)
	failure := f.failSandbox
	f.failSandbox = nil
	f.mu.Unlock()
	if failure != nil {
		return nil, failure
	}
	ips := cfg.IPs
	if cfg.Network != nil { // as the real one: the task made, the network awaited
		var err error
		if ips, err = cfg.Network(); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := &runtime.Sandbox{ID: runtime.SandboxID(testKey, cfg.Attempt), Attempt: cfg.Attempt, Hash: cfg.Hash, Ready: true, CreatedAt: f.clk.Now(),
		NetNS: cfg.NetNS, IPs: ips}
	f.sandboxes = append([]*runtime.Sandbox{sb}, f.sandboxes...)
	c := *sb
	return &c, nil
}

func (f *fakeRuntime) StopSandbox(ctx context.Context, sb *runtime.Sandbox) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removals = append(f.removals, "stop sandbox")
	for _, s := range f.sandboxes {
		if s.ID == sb.ID {
			s.Ready = false
		}
	}
	return nil
}

func (f *fakeRuntime) RemoveSandbox(ctx context.Context, sb *runtime.Sandbox) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removals = append(f.removals, "remove sandbox")
	for i, s := range f.sandboxes {
		if s.ID == sb.ID {
			f.sandboxes = append(f.sandboxes[:i:i], f.sandboxes[i+1:]...)
			break
		}
	}
	return nil
}

func (f *fakeRuntime) StartContainer(ctx context.Context, cfg *runtime.ContainerConfig) (*runtime.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	if f.failStarts > 0 {
		f.failStarts--
		return nil, fmt.Errorf("%w: create task: failed to start shim: file exists", runtime.ErrCreate)
	}
	now := f.clk.Now()
	c := &runtime.Container{
		ID: runtime.ContainerID(testKey, cfg.Container.Name, cfg.Sandbox.Attempt, cfg.Attempt, cfg.Retry), SandboxID: cfg.Sandbox.ID,
		Name: cfg.Container.Name, Init: cfg.Init, Hash: cfg.Hash, Attempt: cfg.Attempt, State: runtime.StateRunning,
		Backoff: cfg.Backoff, CreatedAt: now, StartedAt: now, Last: cfg.Last,
	}
	f.removeLocked(c.ID) // an interrupted start of the same attempt
	f.containers = append(f.containers, c)
	started := *c
	return &started, nil
}

// exitLocked ends a running container as of now.
func (f *fakeRuntime) exitLocked(c *runtime.Container, code int32) {
	if c.State != runtime.StateRunning {
		return
	}
	c.State = runtime.StateExited
	c.Exit = &runtime.Termination{ExitCode: code, Reason: "Error", StartedAt: c.StartedAt, FinishedAt: f.clk.Now(), ID: c.ID}
}

// exit makes the newest instance of a container exit with code, now.
func (f *fakeRuntime) exit(name string, code int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var latest *runtime.Container
	for _, c := range f.containers {
		if c.Name == name && (latest == nil || c.Attempt > latest.Attempt) {
			latest = c
		}
	}
	if latest != nil {
		f.exitLocked(latest, code)
	}
}

// started returns the instance of a container with the given restart
// count, or nil.
func (f *fakeRuntime) started(name string, attempt int) *runtime.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.Name == name && c.Attempt == attempt {
			started := *c
			return &started
		}
	}
	return nil
}

func (f *fakeRuntime) startCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

func (f *fakeRuntime) stopCalls() []stopCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stopCall(nil), f.stops...)
}

func (f *fakeRuntime) StopContainer(ctx context.Context, c *runtime.Container, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, stopCall{c.Name, grace})
	for _, ct := range f.containers {
		if ct.ID == c.ID {
			f.exitLocked(ct, 137)
		}
	}
	return nil
}

func (f *fakeRuntime) RemoveContainer(ctx context.Context, c *runtime.Container) error {
	f.mu.Lock()
	f.removals = append(f.removals, "remove "+c.Name)
	hold := f.holdRemovals
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removeLocked(c.ID)
	return nil
}

func (f *fakeRuntime) removeLocked(id string) {
	for i, c := range f.containers {
		if c.ID == id {
			f.containers = append(f.containers[:i:i], f.containers[i+1:]...)
			return
		}
	}
}

func (f *fakeRuntime) CleanupPod(ctx context.Context, key, namespace, name string) error { return nil }
func (f *fakeRuntime) PodDirs() (map[string]string, error)                               { return nil, nil }
func (f *fakeRuntime) RemovePodDir(dir string) error                                     { return nil }
func (f *fakeRuntime) RemoveOrphans(ctx context.Context, prefix string, minAge time.Duration) error {
	return nil
}

// noVolumes is a pod without volumes.
type noVolumes struct{}

func (noVolumes) Prepare(context.Context, *v1.Pod, podspec.Objects, podspec.PodInfo) error {
	return nil
}
func (noVolumes) Mounts(*v1.Pod, *v1.Container, []string) ([]specs.Mount, error) { return nil, nil }
func (noVolumes) Cleanup(string) error                                           { return nil }
func (noVolumes) Exceeded(*v1.Pod) (string, bool)                                { return "", false }

// clockHooks runs preStop handlers that take the given time of the fake
// clock.
type clockHooks struct {
	clk   *clocktesting.FakeClock
	takes time.Duration
}

func (h clockHooks) RunHook(context.Context, *v1.Container, string, string, *v1.LifecycleHandler, time.Duration) error {
	h.clk.Step(h.takes)
	return nil
}

// unit runs a supervisor on the fake runtime and a fake clock.
type unit struct {
	t         *testing.T
	clk       *clocktesting.FakeClock
	rt        *fakeRuntime
	sup       *Supervisor
	deltas    chan manifest.Delta
	published atomic.Int64 // statuses published for testKey
}

func newUnit(t *testing.T, clk *clocktesting.FakeClock, opts ...Option) *unit {
	t.Helper()
	u := &unit{t: t, clk: clk, rt: &fakeRuntime{clk: clk}, deltas: make(chan manifest.Delta)}
	u.sup = New(u.rt, append([]Option{WithClock(clk), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithVolumes(noVolumes{}), WithResync(time.Hour), WithStatusListener(func(key string, pod *v1.Pod) {
			if key == testKey && pod != nil {
				u.published.Add(1)
			}
		})}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		u.sup.Run(ctx, u.deltas)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return u
}

func (u *unit) declare(pod *v1.Pod) {
	u.deltas <- manifest.Delta{Changes: []manifest.Change{{Kind: manifest.Add, Pod: pod}}}
}

func (u *unit) remove(pod *v1.Pod) {
	u.deltas <- manifest.Delta{Changes: []manifest.Change{{Kind: manifest.Remove, Pod: pod}}}
}

// waitUntil waits for what the supervisor's goroutines do with no step of
// the fake clock; only a supervisor that never does it makes it wait long.
func (u *unit) waitUntil(what string, cond func() bool) {
	u.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			u.t.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// syncAgain wakes the worker until a sync that began after the call has
// published the pod's status: whatever the supervisor does at the fake
// clock's present time, it has done.
func (u *unit) syncAgain() {
	u.t.Helper()
	for range 2 {
		n := u.published.Load()
		u.sup.Wake(testKey)
		u.waitUntil("a sync", func() bool { return u.published.Load() > n })
	}
}

// TestWorkerRestartsOnItsClock: a crash-looping container restarts at once
// the first time, then exactly when its back-off, doubling to the cap, is
// over on the supervisor's clock: not a nanosecond before, and woken by the
// back-off's timer alone (the resync is an hour away).
func TestWorkerRestartsOnItsClock(t *testing.T) {
	policy := BackoffPolicy{Initial: 10 * time.Second, Max: 40 * time.Second, ResetAfter: 10 * time.Minute}
	u := newUnit(t, clocktesting.NewFakeClock(t0), WithBackoff(policy))
	u.declare(testPod(v1.RestartPolicyAlways, []string{"app"}))
	u.waitUntil("the first start", func() bool { return u.rt.started("app", 0) != nil })
	for attempt, backoff := range []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second} {
		exited := u.clk.Now()
		u.rt.exit("app", 1)
		u.sup.Wake(testKey) // as the exit monitor does
		if backoff > 0 {
			u.syncAgain()
			u.clk.Step(backoff - time.Nanosecond)
			u.syncAgain()
			if c := u.rt.started("app", attempt+1); c != nil {
				t.Fatalf("restart %d came %s after the exit, before its back-off of %s", attempt+1, c.StartedAt.Sub(exited), backoff)
			}
			if w := containerStatusOf(u.sup.Pod(testKey), "app").State.Waiting; w == nil || w.Reason != "CrashLoopBackOff" {
				t.Errorf("restart %d: waiting %+v during the back-off, want CrashLoopBackOff", attempt+1, w)
			}
			u.clk.Step(time.Nanosecond)
		}
		var c *runtime.Container
		u.waitUntil(fmt.Sprintf("restart %d", attempt+1), func() bool { c = u.rt.started("app", attempt+1); return c != nil })
		if got := c.StartedAt.Sub(exited); got != backoff || c.Backoff != backoff {
			t.Errorf("restart %d came %s after the exit, recording a back-off of %s; want %s", attempt+1, got, c.Backoff, backoff)
		}
	}
}

// TestFailedRestartKeepsTheCount: when the restart of a crashed container
// fails (containerd refused the create), the crashed instance stays, so the
// restart count does not go back to 0; the next try waits for the failure's
// back-off and has an ID of its own.
func TestFailedRestartKeepsTheCount(t *testing.T) {
	policy := BackoffPolicy{Initial: 10 * time.Second, Max: 40 * time.Second, ResetAfter: 10 * time.Minute}
	u := newUnit(t, clocktesting.NewFakeClock(t0), WithBackoff(policy))
	u.declare(testPod(v1.RestartPolicyAlways, []string{"app"}))
	u.waitUntil("the first start", func() bool { return u.rt.started("app", 0) != nil })
	u.rt.exit("app", 1)
	u.sup.Wake(testKey)
	u.waitUntil("the first restart", func() bool { return u.rt.started("app", 1) != nil })
	crashed := u.rt.started("app", 1)

	u.rt.mu.Lock()
	u.rt.failStarts = 1
	u.rt.mu.Unlock()
	u.rt.exit("app", 1)
	u.syncAgain()
	u.clk.Step(policy.Initial) // the crash-loop back-off
	u.syncAgain()
	if n := u.rt.startCount(); n != 3 {
		t.Fatalf("%d starts, want 2 and a failed restart", n)
	}
	if u.rt.started("app", 1) == nil {
		t.Fatal("the crashed instance was removed although its restart failed")
	}
	if cs := containerStatusOf(u.sup.Pod(testKey), "app"); cs.RestartCount != 1 || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CreateContainerError" {
		t.Errorf("after a failed restart: restart count %d, waiting %+v; want 1, CreateContainerError", cs.RestartCount, cs.State.Waiting)
	}

	u.clk.Step(policy.Initial - time.Nanosecond) // the failure's back-off
	u.syncAgain()
	if n := u.rt.startCount(); n != 3 {
		t.Fatalf("tried again before the failure's back-off of %s was over", policy.Initial)
	}
	u.clk.Step(time.Nanosecond)
	var c *runtime.Container
	u.waitUntil("the restart after the failure", func() bool { c = u.rt.started("app", 2); return c != nil })
	if want := crashed.ID[:len(crashed.ID)-1] + "2-1"; c.ID != want {
		t.Errorf("the retry has ID %s, want %s (a failed create's ID is not used again)", c.ID, want)
	}
	u.syncAgain()
	if u.rt.started("app", 1) != nil {
		t.Error("the crashed instance was not removed once its restart started")
	}
}

// TestStopGracePeriods: the grace period each stop gets: the pod's, what a
// preStop handler leaves of it on the supervisor's clock (but never under
// two seconds), and an eviction's own.
func TestStopGracePeriods(t *testing.T) {
	withPreStop := func(grace int64) *v1.Pod {
		pod := testPod(v1.RestartPolicyAlways, []string{"app"})
		pod.Spec.TerminationGracePeriodSeconds = &grace
		pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}
		return pod
	}
	for _, tc := range []struct {
		name        string
		pod         *v1.Pod
		preStop     time.Duration // of the fake clock
		evictGrace  *int64
		wantGraceOf time.Duration
	}{
		{"the pod's", withPreStop(7), 0, nil, 7 * time.Second},
		{"what preStop left", withPreStop(7), 3 * time.Second, nil, 4 * time.Second},
		{"at least two seconds after preStop", withPreStop(7), 6 * time.Second, nil, 2 * time.Second},
		{"an eviction's", withPreStop(7), 0, new(int64), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			u := newUnit(t, clk, WithHooks(clockHooks{clk, tc.preStop}))
			u.declare(tc.pod)
			u.waitUntil("the start", func() bool { return u.rt.started("app", 0) != nil })
			if tc.evictGrace != nil {
				u.sup.Evict(testKey, "evicted", tc.evictGrace, func(time.Time) bool { return false })
			} else {
				u.remove(tc.pod)
			}
			u.waitUntil("the stop", func() bool { return len(u.rt.stopCalls()) > 0 })
			if got := u.rt.stopCalls(); len(got) != 1 || got[0] != (stopCall{"app", tc.wantGraceOf}) {
				t.Errorf("stops %+v, want app with %s", got, tc.wantGraceOf)
			}
		})
	}
}

// TestSidecarsStopLast: when a pod goes, its app containers stop first
// (here with a preStop handler taking 3 s of the clock), then its sidecars
// one by one in reverse order, in what is left of the grace period.
func TestSidecarsStopLast(t *testing.T) {
	grace := int64(10)
	pod := withSidecars(testPod(v1.RestartPolicyAlways, []string{"app"}, "first", "second"), "first", "second")
	pod.Spec.TerminationGracePeriodSeconds = &grace
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}
	clk := clocktesting.NewFakeClock(t0)
	u := newUnit(t, clk, WithHooks(clockHooks{clk, 3 * time.Second}))
	u.declare(pod)
	u.waitUntil("the app's start after both sidecars", func() bool { return u.rt.started("app", 0) != nil })
	u.remove(pod)
	u.waitUntil("three stops", func() bool { return len(u.rt.stopCalls()) == 3 })
	want := []stopCall{{"app", 7 * time.Second}, {"second", 7 * time.Second}, {"first", 7 * time.Second}}
	if got := u.rt.stopCalls(); !slices.Equal(got, want) {
		t.Errorf("stops %+v, want %+v", got, want)
	}
}

// TestActiveDeadlineOnItsClock: a pod's containers are stopped when its
// activeDeadlineSeconds pass on the supervisor's clock (the plan tests show
// they are not stopped before).
func TestActiveDeadlineOnItsClock(t *testing.T) {
	deadline := int64(30)
	pod := testPod(v1.RestartPolicyAlways, []string{"app"})
	pod.Spec.ActiveDeadlineSeconds = &deadline
	clk := clocktesting.NewFakeClock(t0)
	u := newUnit(t, clk)
	u.declare(pod)
	u.waitUntil("the start", func() bool { return u.rt.started("app", 0) != nil })
	// The sync that made the sandbox set the worker's timer: no other
	// sync comes between (the resync period is an hour).
	u.waitUntil("the worker waiting for the deadline", func() bool { return clk.HasWaiters() })
	if len(u.rt.stopCalls()) != 0 {
		t.Fatal("stopped before the deadline")
	}
	clk.Step(30 * time.Second)
	u.waitUntil("the stop at the deadline", func() bool { return len(u.rt.stopCalls()) == 1 })
}

// TestEvictionBacksOffOnItsClock: a pod evicted without a readmission
// condition stays Failed (Evicted) for a back-off that doubles with each
// eviction, on the supervisor's clock, and runs again at the first
// readmission check after it.
func TestEvictionBacksOffOnItsClock(t *testing.T) {
	policy := BackoffPolicy{Initial: 10 * time.Second, Max: 40 * time.Second, ResetAfter: 10 * time.Minute}
	u := newUnit(t, clocktesting.NewFakeClock(t0), WithBackoff(policy))
	u.declare(testPod(v1.RestartPolicyAlways, []string{"app"}))
	u.waitUntil("the first start", func() bool { return u.rt.startCount() == 1 })
	zero := int64(0)
	for i, backoff := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		starts := u.rt.startCount()
		u.sup.Evict(testKey, "evicted", &zero, nil)
		u.waitUntil("the eviction", func() bool { return u.sup.Pod(testKey).Status.Reason == "Evicted" })
		u.clk.Step(backoff - time.Nanosecond)
		u.syncAgain()
		if p := u.sup.Pod(testKey); p.Status.Reason != "Evicted" || u.rt.startCount() != starts {
			t.Fatalf("eviction %d: %s (%s) and %d starts before its back-off of %s was over", i+1, p.Status.Phase, p.Status.Reason, u.rt.startCount()-starts, backoff)
		}
		u.clk.Step(evictionCheck)
		u.waitUntil(fmt.Sprintf("readmission %d", i+1), func() bool { return u.rt.startCount() > starts })
	}
}

// heldNetwork is a pod network whose TearDown waits until the test
// releases it, and reports whether its context ended meanwhile.
type heldNetwork struct {
	NoNetwork
	entered   chan struct{}
	release   chan struct{}
	cancelled chan bool
}

func (n *heldNetwork) TearDown(ctx context.Context, _ string) error {
	select { // the first call is the one the test holds
	case n.entered <- struct{}{}:
	default:
	}
	<-n.release
	select {
	case n.cancelled <- ctx.Err() != nil:
	default:
	}
	return ctx.Err()
}

// addingNetwork is a pod network whose SetUp makes the namespace, then
// runs its plugins until the test releases them: with the IPs, or failing.
type addingNetwork struct {
	NoNetwork
	adding   chan struct{}
	release  chan error
	teardown atomic.Int32
}

func (n *addingNetwork) SetUp(ctx context.Context, _ *v1.Pod, id string, _ *specs.LinuxIDMapping, made func(PodNetwork)) (PodNetwork, error) {
	made(PodNetwork{NetNS: "/ns/" + id})
	n.adding <- struct{}{}
	if err := <-n.release; err != nil {
		return PodNetwork{}, err
	}
	return PodNetwork{NetNS: "/ns/" + id, IPs: []string{"10.0.0.7"}}, nil
}

func (n *addingNetwork) TearDown(context.Context, string) error {
	n.teardown.Add(1)
	return nil
}

// TestSandboxMadeDuringNetworkSetUp: the pause sandbox is created in the
// pod's network namespace while the network's plugins still run, and gets
// the IPs they give; a setup that fails fails the sandbox, and there is
// nothing for podsup to tear down.
func TestSandboxMadeDuringNetworkSetUp(t *testing.T) {
	n := &addingNetwork{adding: make(chan struct{}), release: make(chan error)}
	clk := clocktesting.NewFakeClock(t0)
	u := newUnit(t, clk, WithNetwork(n))
	pod := testPod(v1.RestartPolicyAlways, []string{"app"})
	u.declare(pod)
	<-n.adding
	first := runtime.SandboxID(testKey, 0)
	u.waitUntil("the sandbox's creation during the ADD", func() bool {
		u.rt.mu.Lock()
		defer u.rt.mu.Unlock()
		return slices.Equal(u.rt.sandboxTries, []string{"/ns/" + first})
	})
	if u.rt.startCount() != 0 {
		t.Fatal("a container started before the pod network was set up")
	}
	n.release <- fmt.Errorf("plugin bridge failed")
	u.waitUntil("the failure in the status", func() bool {
		p := u.sup.Pod(testKey)
		return p != nil && strings.Contains(p.Status.Message, "set up the pod network: plugin bridge failed")
	})
	if st, _ := u.rt.PodState(context.Background(), testKey); len(st.Sandboxes) != 0 || n.teardown.Load() != 0 {
		t.Fatalf("after a failed setup: %d sandboxes, %d teardowns; want none (SetUp undoes itself)", len(st.Sandboxes), n.teardown.Load())
	}

	// Past the sandbox's back-off, whose timer wakes the worker; stepped
	// again until it has, as the timer may be set after a step.
	u.waitUntil("the sandbox's retry", func() bool {
		select {
		case <-n.adding:
			return true
		default:
			u.clk.Step(time.Minute)
			return false
		}
	})
	n.release <- nil
	u.waitUntil("the start", func() bool { return u.rt.started("app", 0) != nil })
	st, _ := u.rt.PodState(context.Background(), testKey)
	if len(st.Sandboxes) != 1 || !slices.Equal(st.Sandboxes[0].IPs, []string{"10.0.0.7"}) || !strings.HasPrefix(st.Sandboxes[0].NetNS, "/ns/") {
		t.Fatalf("sandboxes %+v; want one in /ns/ with the network's IP", st.Sandboxes)
	}
}

// TestSandboxFailureNamesTheNetworksCause: a network setup that fails
// removes the namespace the pause task is being made in, and the task's
// create fails for that; the pod's status and event name the network's
// error, the cause (a full disk, say), not the missing namespace.
func TestSandboxFailureNamesTheNetworksCause(t *testing.T) {
	n := &addingNetwork{adding: make(chan struct{}), release: make(chan error)}
	u := newUnit(t, clocktesting.NewFakeClock(t0), WithNetwork(n))
	u.rt.failSandbox = errors.New("create pause task: namespace path: no such file or directory")
	u.declare(testPod(v1.RestartPolicyAlways, []string{"app"}))
	<-n.adding
	u.waitUntil("the sandbox's failed creation", func() bool {
		u.rt.mu.Lock()
		defer u.rt.mu.Unlock()
		return len(u.rt.sandboxTries) == 1
	})
	n.release <- errors.New("plugin loopback failed: write cache: no space left on device")
	const want = "set up the pod network: plugin loopback failed: write cache: no space left on device"
	u.waitUntil("the network's error in the status", func() bool {
		p := u.sup.Pod(testKey)
		return p != nil && strings.Contains(p.Status.Message, want)
	})
	if p := u.sup.Pod(testKey); strings.Contains(p.Status.Message, "namespace path") {
		t.Errorf("status message %q names the consequence besides the cause", p.Status.Message)
	}
	found := false
	for _, ev := range u.sup.Events().List(testKey) {
		found = found || ev.Reason == "FailedCreatePodSandBox" && strings.Contains(ev.Message, want)
	}
	if !found {
		t.Errorf("no FailedCreatePodSandBox event names the network's error; events %+v", u.sup.Events().List(testKey))
	}
}

// TestRemovalStopsThePauseFirst: a removed pod's pause process goes as
// soon as its containers have stopped, as the kubelet's StopPodSandbox
// makes it go, and their tasks at the same time, as the CRI deletes an
// exited container's task at once: the pause's stop does not wait for the
// containers' removals, nor they for each other. The sandbox's record
// goes last.
func TestRemovalStopsThePauseFirst(t *testing.T) {
	u := newUnit(t, clocktesting.NewFakeClock(t0))
	pod := testPod(v1.RestartPolicyAlways, []string{"app", "helper"})
	u.declare(pod)
	u.waitUntil("the start", func() bool { return u.rt.started("app", 0) != nil && u.rt.started("helper", 0) != nil })
	hold := make(chan struct{})
	u.rt.mu.Lock()
	u.rt.holdRemovals = hold
	u.rt.mu.Unlock()
	u.remove(pod)
	u.waitUntil("the pause's stop beside both containers' removals, all under way", func() bool {
		u.rt.mu.Lock()
		defer u.rt.mu.Unlock()
		got := slices.Clone(u.rt.removals)
		slices.Sort(got)
		return slices.Equal(got, []string{"remove app", "remove helper", "stop sandbox"})
	})
	close(hold)
	u.waitUntil("the removal", func() bool {
		st, _ := u.rt.PodState(context.Background(), testKey)
		return len(st.Sandboxes)+len(st.Containers) == 0
	})
	u.rt.mu.Lock()
	got := slices.Clone(u.rt.removals)
	u.rt.mu.Unlock()
	if len(got) != 4 || got[3] != "remove sandbox" {
		t.Errorf("removal steps %q, want the sandbox's record removed last, once", got)
	}
}

// TestRemovalTearsDownTheWholeNetwork: a pod declared again while its
// removal tears down the network (an editor that truncates, then writes)
// waits for the teardown; cancelling it would leave half a network, which
// the new sandbox of the same ID would then trust.
func TestRemovalTearsDownTheWholeNetwork(t *testing.T) {
	n := &heldNetwork{entered: make(chan struct{}, 1), release: make(chan struct{}), cancelled: make(chan bool, 1)}
	u := newUnit(t, clocktesting.NewFakeClock(t0), WithNetwork(n))
	pod := testPod(v1.RestartPolicyAlways, []string{"app"})
	u.declare(pod)
	u.waitUntil("the start", func() bool { return u.rt.started("app", 0) != nil })
	u.remove(pod)
	<-n.entered
	u.declare(pod) // cancels the removal's sync
	close(n.release)
	if <-n.cancelled {
		t.Fatal("the teardown's context ended when the pod was declared again")
	}
	u.waitUntil("the start in a new sandbox", func() bool {
		st, _ := u.rt.PodState(context.Background(), testKey)
		return len(st.Sandboxes) == 1 && u.rt.started("app", 0) != nil
	})
}
