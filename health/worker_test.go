package health

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/events"
)

// script answers probes from scripted results, by the probe's exec command
// ("live", "ready", "start"); the last result repeats.
type script struct {
	mu      sync.Mutex
	results map[string][]Result
	calls   map[string]int
	called  chan string
}

func (s *script) run(_ context.Context, h *v1.ProbeHandler, _ target, _ time.Duration) (Result, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := h.Exec.Command[0]
	seq := s.results[name]
	r := Success
	if len(seq) > 0 {
		r = seq[min(s.calls[name], len(seq)-1)]
	}
	s.calls[name]++
	if s.called != nil {
		s.called <- name
	}
	return r, name + " says " + r.String()
}

func (s *script) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[name]
}

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func probe(cmd string, success, failure int32) *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{cmd}}},
		PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: success, FailureThreshold: failure}
}

// testManager returns a manager with a scripted runner and a record of
// which pods it woke.
func testManager(results map[string][]Result) (*Manager, *script, *[]string, *events.Recorder) {
	clk := clocktesting.NewFakeClock(t0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := events.NewRecorder(100, log, clk)
	var woken []string
	var mu sync.Mutex
	m := New(nil, WithClock(clk), WithLogger(log), WithEvents(rec), WithChangeHandler(func(k string) {
		mu.Lock()
		woken = append(woken, k)
		mu.Unlock()
	}))
	s := &script{results: results, calls: map[string]int{}}
	m.prober = s
	return m, s, &woken, rec
}

// addWorker registers an instance and returns a worker for it, without
// starting its goroutine: the tests drive step.
func addWorker(m *Manager, id string, kind Kind, p *v1.Probe, startup bool) *worker {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.instances[id]
	if inst == nil {
		inst = &instance{podKey: "default/web", name: "app", state: map[Kind]Result{}, last: map[Kind]ProbeStatus{}}
		m.instances[id] = inst
	}
	inst.state[kind] = initial(kind)
	if startup {
		inst.state[Startup] = initial(Startup)
	}
	return &worker{m: m, podKey: "default/web", kind: kind, probe: p, target: target{containerID: id}, lastResult: Unknown}
}

func TestLivenessCondemnsAfterThreshold(t *testing.T) {
	m, _, woken, rec := testManager(map[string][]Result{"live": {Success, Failure, Failure, Failure}})
	grace := int64(7)
	p := probe("live", 1, 3)
	p.TerminationGracePeriodSeconds = &grace
	w := addWorker(m, "c1", Liveness, p, false)
	for i := 0; i < 3; i++ {
		if !w.step(context.Background()) {
			t.Fatalf("step %d stopped the worker", i)
		}
		if v := m.Condemned("default/web"); v != nil {
			t.Fatalf("condemned after %d steps: %v", i+1, v)
		}
	}
	if w.step(context.Background()) {
		t.Error("the worker kept probing a condemned container")
	}
	v := m.Condemned("default/web")["c1"]
	if v.Reason != "Container app failed liveness probe, will be restarted" || v.GracePeriodSeconds == nil || *v.GracePeriodSeconds != 7 {
		t.Errorf("verdict %+v", v)
	}
	if len(*woken) != 1 {
		t.Errorf("woke the pod %d times, want once", len(*woken))
	}
	unhealthy := rec.List("default/web")
	if len(unhealthy) != 1 || unhealthy[0].Reason != "Unhealthy" || unhealthy[0].Count != 3 || !strings.Contains(unhealthy[0].Message, "Liveness probe failed: live says failure") {
		t.Errorf("events %+v", unhealthy)
	}
}

func TestReadinessThresholdsBothWays(t *testing.T) {
	m, _, woken, _ := testManager(map[string][]Result{"ready": {Success, Success, Failure, Unknown, Success}})
	c := &v1.Container{Name: "app", ReadinessProbe: probe("ready", 2, 1)}
	w := addWorker(m, "c1", Readiness, c.ReadinessProbe, false)
	wantReady := []bool{false, true, false, false, false}
	for i, want := range wantReady {
		w.step(context.Background())
		if got := m.Ready(nil, c, "containerd://c1"); got != want {
			t.Errorf("after step %d: ready %v, want %v", i+1, got, want)
		}
	}
	if len(*woken) != 2 {
		t.Errorf("woke the pod %d times, want 2 (ready, then not)", len(*woken))
	}
	if m.Condemned("default/web") != nil {
		t.Error("a readiness failure condemned the container")
	}
}

func TestStartupHoldsLiveness(t *testing.T) {
	m, s, _, _ := testManager(map[string][]Result{"start": {Failure, Failure, Success}, "live": {Failure}})
	c := &v1.Container{Name: "app", StartupProbe: probe("start", 1, 5), LivenessProbe: probe("live", 1, 1)}
	startup := addWorker(m, "c1", Startup, c.StartupProbe, true)
	live := addWorker(m, "c1", Liveness, c.LivenessProbe, true)
	for i := 0; i < 2; i++ {
		live.step(context.Background())
		startup.step(context.Background())
	}
	if n := s.count("live"); n != 0 {
		t.Fatalf("liveness ran %d times before the startup probe succeeded", n)
	}
	if m.Started(nil, c, "c1") {
		t.Fatal("started after two startup failures")
	}
	startup.step(context.Background())
	if !m.Started(nil, c, "c1") {
		t.Fatal("not started after the startup probe succeeded")
	}
	if startup.step(context.Background()) {
		t.Error("the startup probe kept running after it succeeded")
	}
	live.step(context.Background())
	if s.count("live") != 1 || m.Condemned("default/web") == nil {
		t.Errorf("liveness after start: %d runs, verdict %v", s.count("live"), m.Condemned("default/web"))
	}
}

func TestStartupFailureCondemns(t *testing.T) {
	m, _, _, _ := testManager(map[string][]Result{"start": {Failure}})
	w := addWorker(m, "c1", Startup, probe("start", 1, 2), true)
	w.step(context.Background())
	w.step(context.Background())
	if v := m.Condemned("default/web")["c1"]; v.Reason != "Container app failed startup probe, will be restarted" {
		t.Errorf("verdict %+v", v)
	}
}

// TestInitialDelay drives the run loop with the fake clock: no probe before
// initialDelaySeconds, then one per period.
func TestInitialDelay(t *testing.T) {
	m, s, _, _ := testManager(nil)
	s.called = make(chan string, 10)
	clk := m.clock.(*clocktesting.FakeClock)
	p := probe("ready", 1, 1)
	p.InitialDelaySeconds, p.PeriodSeconds = 5, 2
	w := addWorker(m, "c1", Readiness, p, false)
	w.startedAt = t0
	ctx, cancel := context.WithCancel(context.Background())
	w.done = make(chan struct{})
	go w.run(ctx)
	defer func() { cancel(); <-w.done }()
	waitTimers(t, clk)
	clk.Step(4 * time.Second)
	// Step fires a due timer before it returns: the worker's is still set.
	if !clk.HasWaiters() || s.count("ready") != 0 {
		t.Fatal("probed before the initial delay")
	}
	clk.Step(time.Second)
	waitProbe(t, s.called)
	waitTimers(t, clk)
	clk.Step(2 * time.Second)
	waitProbe(t, s.called)
	if n := s.count("ready"); n != 2 {
		t.Errorf("%d probes in the first two periods, want 2", n)
	}
}

// waitTimers waits until the worker waits on the clock, for a minute at most.
func waitTimers(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !clk.HasWaiters(); {
		if time.Now().After(deadline) {
			t.Fatal("the worker never waited on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

// waitProbe waits for the worker's next probe, for a minute at most.
func waitProbe(t *testing.T, called <-chan string) {
	t.Helper()
	select {
	case <-called:
	case <-time.After(time.Minute):
		t.Fatal("the worker did not probe within a minute of its time")
	}
}

func runningPod(id string, c v1.Container) *v1.Pod {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}
	pod.Spec.Containers = []v1.Container{c}
	pod.Status.PodIP = "10.86.0.9"
	pod.Status.ContainerStatuses = []v1.ContainerStatus{{Name: c.Name, ContainerID: "containerd://" + id,
		State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}}}
	return pod
}

func TestSyncStartsAndStopsWorkers(t *testing.T) {
	m, _, _, _ := testManager(nil)
	defer m.Stop()
	c := v1.Container{Name: "app", ReadinessProbe: probe("ready", 1, 1), LivenessProbe: probe("live", 1, 3)}
	workers := func() map[workerKey]*worker {
		m.mu.Lock()
		defer m.mu.Unlock()
		out := map[workerKey]*worker{}
		for k, w := range m.workers {
			out[k] = w
		}
		return out
	}
	m.Sync(runningPod("c1", c))
	before := workers()
	if len(before) != 2 || before[workerKey{"c1", Readiness}] == nil || before[workerKey{"c1", Liveness}] == nil {
		t.Fatalf("workers %v", before)
	}
	m.Sync(runningPod("c1", c))
	if after := workers(); after[workerKey{"c1", Readiness}] != before[workerKey{"c1", Readiness}] {
		t.Error("an unchanged pod got new workers")
	}
	c.ReadinessProbe.PeriodSeconds = 5
	m.Sync(runningPod("c1", c))
	if after := workers(); after[workerKey{"c1", Readiness}] == before[workerKey{"c1", Readiness}] || after[workerKey{"c1", Liveness}] != before[workerKey{"c1", Liveness}] {
		t.Error("a changed readiness probe must replace that worker only")
	}
	m.Sync(runningPod("c2", c)) // restarted: a new instance
	if after := workers(); len(after) != 2 || after[workerKey{"c2", Readiness}] == nil {
		t.Errorf("after a restart: %v", after)
	}
	m.Remove("default/web")
	if after := workers(); len(after) != 0 || len(m.instances) != 0 {
		t.Errorf("after removal: %d workers, %d instances", len(after), len(m.instances))
	}
}

// TestSyncProbesSidecars: a native sidecar's probes run, a regular init
// container's are never looked at.
func TestSyncProbesSidecars(t *testing.T) {
	m, _, _, _ := testManager(nil)
	defer m.Stop()
	always := v1.ContainerRestartPolicyAlways
	pod := runningPod("app1", v1.Container{Name: "app"})
	pod.Spec.InitContainers = []v1.Container{
		{Name: "proxy", RestartPolicy: &always, StartupProbe: probe("start", 1, 3), ReadinessProbe: probe("ready", 1, 1)},
		{Name: "setup", ReadinessProbe: probe("ready", 1, 1)}, // refused by validation; ignored if it came here
	}
	running := v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}
	pod.Status.InitContainerStatuses = []v1.ContainerStatus{
		{Name: "proxy", ContainerID: "containerd://side1", State: running},
		{Name: "setup", ContainerID: "containerd://setup1", State: running},
	}
	m.Sync(pod)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.workers) != 2 || m.workers[workerKey{"side1", Startup}] == nil || m.workers[workerKey{"side1", Readiness}] == nil {
		t.Errorf("workers %v, want the sidecar's startup and readiness probes", m.workers)
	}
}
