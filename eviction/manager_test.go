package eviction

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/qos"
)

const mi = 1 << 20

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// pod makes a running pod; memRequest 0 and limit 0 make it BestEffort,
// request == limit Guaranteed, otherwise Burstable.
func pod(name string, memRequest, memLimit int64, prio int32) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:   v1.PodSpec{Priority: &prio, Containers: []v1.Container{{Name: "c"}}},
		Status: v1.PodStatus{Phase: v1.PodRunning}}
	r := &p.Spec.Containers[0].Resources
	if memRequest > 0 {
		r.Requests = v1.ResourceList{v1.ResourceMemory: *resource.NewQuantity(memRequest, resource.BinarySI)}
	}
	if memLimit > 0 {
		r.Limits = v1.ResourceList{v1.ResourceMemory: *resource.NewQuantity(memLimit, resource.BinarySI)}
		if memRequest == memLimit {
			r.Requests[v1.ResourceCPU] = resource.MustParse("100m")
			r.Limits[v1.ResourceCPU] = resource.MustParse("100m")
		}
	}
	return p
}

// harness drives a manager with fake stats, a fake clock and a recording
// kill function.
type harness struct {
	t       *testing.T
	clock   *clocktesting.FakeClock
	m       *Manager
	stats   *Stats
	pods    []*v1.Pod
	evicted []string
	msgs    []string
	grace   []int64
	readmit []func(time.Time) bool
	reclaim func()
}

func newHarness(t *testing.T, hard, soft, softGrace, minReclaim string) *harness {
	t.Helper()
	ts, err := ParseConfig(hard, soft, softGrace, minReclaim)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clock: clocktesting.NewFakeClock(t0), stats: &Stats{Signals: map[Signal]Amount{}, Pods: map[string]PodUsage{}}}
	cfg := Config{Thresholds: ts, MaxPodGracePeriod: 10, TransitionPeriod: 5 * time.Minute, Housekeeping: 10 * time.Second}
	statsFn := func(context.Context) (*Stats, error) {
		cp := *h.stats
		return &cp, nil
	}
	kill := func(key, message string, grace *int64, readmit func(time.Time) bool) {
		h.evicted = append(h.evicted, key)
		h.msgs = append(h.msgs, message)
		h.grace = append(h.grace, *grace)
		h.readmit = append(h.readmit, readmit)
		for _, p := range h.pods {
			if p.Namespace+"/"+p.Name == key {
				p.Status.Phase = v1.PodFailed
			}
		}
	}
	opts := []Option{WithClock(h.clock), WithLogger(slog.New(slog.DiscardHandler)),
		WithReclaim(NodeFs, func(context.Context) error {
			if h.reclaim != nil {
				h.reclaim()
			}
			return nil
		})}
	h.m = New(cfg, statsFn, func() []*v1.Pod { return h.pods }, kill, opts...)
	return h
}

func (h *harness) memory(available uint64) {
	h.stats.Signals[MemoryAvailable] = Amount{Available: available, Capacity: 4096 * mi}
}

func (h *harness) disk(available uint64) {
	h.stats.Signals[NodeFsAvailable] = Amount{Available: available, Capacity: 1000 * mi}
}

func (h *harness) step(after time.Duration) {
	h.clock.Step(after)
	h.m.step(context.Background())
}

func (h *harness) pressure(t v1.NodeConditionType) bool { return h.m.Pressure(t) }

func TestHardMemoryThresholdEvictsBestEffortFirstAndNeverCritical(t *testing.T) {
	h := newHarness(t, "memory.available<100Mi", "", "", "")
	critical := pod("etcd", 0, 0, qos.SystemCriticalPriority+1000)
	critical.Spec.PriorityClassName = "system-node-critical"
	h.pods = []*v1.Pod{critical, pod("guaranteed", 200*mi, 200*mi, 0), pod("burstable", 100*mi, 0, 0), pod("besteffort", 0, 0, 0)}
	h.stats.Pods = map[string]PodUsage{
		"default/etcd": {MemoryWorkingSet: 3000 * mi}, "default/guaranteed": {MemoryWorkingSet: 190 * mi},
		"default/burstable": {MemoryWorkingSet: 50 * mi}, "default/besteffort": {MemoryWorkingSet: 10 * mi},
	}
	h.memory(500 * mi)
	h.step(0)
	if len(h.evicted) != 0 || h.pressure(v1.NodeMemoryPressure) {
		t.Fatalf("no threshold met, yet evicted %v, pressure %v", h.evicted, h.pressure(v1.NodeMemoryPressure))
	}

	h.memory(50 * mi)
	h.step(10 * time.Second)
	if !h.pressure(v1.NodeMemoryPressure) {
		t.Fatal("no MemoryPressure")
	}
	if len(h.evicted) != 1 || h.evicted[0] != "default/besteffort" {
		t.Fatalf("evicted %v, want the BestEffort pod first (it uses more than it requests)", h.evicted)
	}
	if h.grace[0] != immediateGrace {
		t.Errorf("grace %d for a hard threshold", h.grace[0])
	}
	for _, want := range []string{"low on resource: memory", "Threshold quantity: 100Mi", "available: 50Mi", "signal memory.available"} {
		if !strings.Contains(h.msgs[0], want) {
			t.Errorf("message %q lacks %q", h.msgs[0], want)
		}
	}

	// Still short: one pod per pass, Burstable next, then Guaranteed; never
	// the critical pod, however much it uses.
	h.step(10 * time.Second)
	h.step(10 * time.Second)
	h.step(10 * time.Second)
	if got := strings.Join(h.evicted, ","); got != "default/besteffort,default/burstable,default/guaranteed" {
		t.Fatalf("evicted %s", got)
	}

	// Admission: under MemoryPressure a BestEffort pod waits, others start.
	if ok, reason, _ := h.m.Admit(pod("new-besteffort", 0, 0, 0)); ok || reason != "NodeMemoryPressure" {
		t.Errorf("a BestEffort pod was admitted under memory pressure (%v, %s)", ok, reason)
	}
	if ok, _, _ := h.m.Admit(pod("new-burstable", 10*mi, 0, 0)); !ok {
		t.Error("a Burstable pod was refused under memory pressure")
	}

	// The pressure goes; the condition and the evicted pods wait for the
	// transition period.
	h.memory(2000 * mi)
	h.step(10 * time.Second)
	if !h.pressure(v1.NodeMemoryPressure) || h.readmit[0](h.clock.Now()) {
		t.Fatal("the condition cleared, or a pod was readmitted, before the transition period")
	}
	h.step(4*time.Minute + 40*time.Second)
	if !h.pressure(v1.NodeMemoryPressure) {
		t.Fatal("the condition cleared before the transition period")
	}
	h.step(20 * time.Second)
	if h.pressure(v1.NodeMemoryPressure) || !h.readmit[0](h.clock.Now()) {
		t.Fatal("the condition stayed, or the pod was not readmitted, after the transition period")
	}
	if len(h.evicted) != 3 {
		t.Errorf("evicted %v after the pressure went", h.evicted)
	}
}

func TestSoftThresholdWaitsForItsGracePeriod(t *testing.T) {
	h := newHarness(t, "", "memory.available<1Gi", "memory.available=1m", "")
	h.pods = []*v1.Pod{pod("web", 0, 0, 0)}
	long := int64(60)
	h.pods[0].Spec.TerminationGracePeriodSeconds = &long
	h.memory(500 * mi)
	h.step(0)
	if !h.pressure(v1.NodeMemoryPressure) {
		t.Fatal("a met soft threshold sets the condition at once")
	}
	h.step(50 * time.Second)
	if len(h.evicted) != 0 {
		t.Fatal("evicted within the soft grace period")
	}
	// Cleared in between: the grace period starts again.
	h.memory(2000 * mi)
	h.step(5 * time.Second)
	h.memory(500 * mi)
	h.step(5 * time.Second)
	h.step(50 * time.Second)
	if len(h.evicted) != 0 {
		t.Fatal("the grace period did not restart after the threshold cleared")
	}
	h.step(10 * time.Second)
	if len(h.evicted) != 1 {
		t.Fatal("not evicted after the grace period")
	}
	if h.grace[0] != 10 {
		t.Errorf("grace %d, want --eviction-max-pod-grace-period 10 (the pod's own is 60)", h.grace[0])
	}
}

// TestNegativeMaxPodGracePeriod: a negative --eviction-max-pod-grace-period
// leaves a pod evicted for a soft threshold its own grace period.
func TestNegativeMaxPodGracePeriod(t *testing.T) {
	h := newHarness(t, "", "memory.available<1Gi", "memory.available=0s", "")
	h.m.cfg.MaxPodGracePeriod = -1
	h.pods = []*v1.Pod{pod("web", 0, 0, 0)}
	long := int64(60)
	h.pods[0].Spec.TerminationGracePeriodSeconds = &long
	h.memory(500 * mi)
	h.step(0)
	if len(h.evicted) != 1 || h.grace[0] != 60 {
		t.Fatalf("evicted %v with grace %v, want web with its own 60 s", h.evicted, h.grace)
	}
}

func TestReclaimBeforeEvicting(t *testing.T) {
	h := newHarness(t, "nodefs.available<10%", "", "", "nodefs.available=5%")
	h.pods = []*v1.Pod{pod("web", 0, 0, 0)}
	h.disk(50 * mi)
	reclaims := 0
	h.reclaim = func() {
		reclaims++
		h.disk(200 * mi) // logs deleted: over 10% + 5%
	}
	h.step(0)
	if reclaims != 1 || len(h.evicted) != 0 {
		t.Fatalf("reclaims %d, evicted %v: want a reclaim and no eviction", reclaims, h.evicted)
	}
	if !h.pressure(v1.NodeDiskPressure) {
		t.Error("DiskPressure was not reported while the threshold was met")
	}
	if ok, reason, msg := h.m.Admit(pod("new", 10*mi, 0, 0)); ok || reason != "NodeDiskPressure" || !strings.Contains(msg, "DiskPressure") {
		t.Errorf("a pod was admitted under disk pressure (%v, %s, %s)", ok, reason, msg)
	}

	// Reclaiming frees too little: the pod goes.
	h.reclaim = func() { reclaims++; h.disk(120 * mi) }
	h.disk(50 * mi)
	h.step(10 * time.Second)
	if reclaims != 2 || len(h.evicted) != 1 {
		t.Fatalf("reclaims %d, evicted %v: want the pod evicted once reclaiming fell short of the minimum reclaim", reclaims, h.evicted)
	}
	if !strings.Contains(h.msgs[0], "ephemeral-storage") || !strings.Contains(h.msgs[0], "nodefs.available") {
		t.Errorf("message %q", h.msgs[0])
	}
}

func TestNoStatsNoAction(t *testing.T) {
	h := newHarness(t, "memory.available<100Mi", "", "", "")
	h.pods = []*v1.Pod{pod("web", 0, 0, 0)}
	h.step(0) // no signals measured
	if len(h.evicted) != 0 || h.pressure(v1.NodeMemoryPressure) {
		t.Fatal("acted on a signal that was not measured")
	}
	conds := h.m.Conditions()
	if len(conds) != 3 || conds[0].Type != v1.NodeMemoryPressure || conds[0].Status != v1.ConditionFalse || conds[0].Reason != "PodsupHasSufficientMemory" {
		t.Errorf("conditions %+v", conds)
	}
}

func TestRank(t *testing.T) {
	high := int32(1000)
	tests := []struct {
		name string
		res  Resource
		pods []candidate
		want string
	}{
		{"over its request beats a bigger user within", Memory, []candidate{
			{pod: pod("within", 500*mi, 0, 0), key: "within", usage: PodUsage{MemoryWorkingSet: 400 * mi}},
			{pod: pod("over", 10*mi, 0, 0), key: "over", usage: PodUsage{MemoryWorkingSet: 20 * mi}},
		}, "over"},
		{"lower priority first", Memory, []candidate{
			{pod: pod("high", 0, 0, high), key: "high", usage: PodUsage{MemoryWorkingSet: 10 * mi}},
			{pod: pod("low", 0, 0, 0), key: "low", usage: PodUsage{MemoryWorkingSet: 1 * mi}},
		}, "low"},
		{"BestEffort before Burstable at equal priority", Memory, []candidate{
			{pod: pod("burstable", 1*mi, 0, 0), key: "burstable", usage: PodUsage{MemoryWorkingSet: 900 * mi}},
			{pod: pod("besteffort", 0, 0, 0), key: "besteffort", usage: PodUsage{MemoryWorkingSet: 1 * mi}},
		}, "besteffort"},
		{"the larger use beyond the request", NodeFs, []candidate{
			{pod: pod("small", 0, 0, 0), key: "small", usage: PodUsage{Ephemeral: 10 * mi}},
			{pod: pod("big", 0, 0, 0), key: "big", usage: PodUsage{Ephemeral: 300 * mi}},
		}, "big"},
		{"image filesystem by writable layers", ImageFs, []candidate{
			{pod: pod("logs", 0, 0, 0), key: "logs", usage: PodUsage{Ephemeral: 900 * mi, Rootfs: 1 * mi}},
			{pod: pod("layer", 0, 0, 0), key: "layer", usage: PodUsage{Ephemeral: 100 * mi, Rootfs: 90 * mi}},
		}, "layer"},
		{"process IDs by count", PIDs, []candidate{
			{pod: pod("few", 0, 0, 0), key: "few", usage: PodUsage{Processes: 3}},
			{pod: pod("forkbomb", 0, 0, 0), key: "forkbomb", usage: PodUsage{Processes: 3000}},
		}, "forkbomb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rank(tc.pods, tc.res)
			if tc.pods[0].key != tc.want {
				t.Errorf("first: %s, want %s", tc.pods[0].key, tc.want)
			}
		})
	}
}

// TestRequestsCountSidecarsAndPodLevel: what a pod requests, for the
// eviction order, counts its sidecars beside its app containers (and beside
// the init containers that start after them), and its pod-level request
// when it has one, as the kubelet counts them.
func TestRequestsCountSidecarsAndPodLevel(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	mem := func(q string) v1.ResourceRequirements {
		return v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse(q)}}
	}
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "proxy", RestartPolicy: &always, Resources: mem("50Mi")}, {Name: "setup", Resources: mem("120Mi")}},
		Containers:     []v1.Container{{Name: "app", Resources: mem("100Mi")}},
	}}
	if got, want := requests(pod, v1.ResourceMemory), uint64(170<<20); got != want {
		t.Errorf("requests %d MiB, want 170 (setup beside the sidecar outweighs app and sidecar, 150)", got>>20)
	}
	pod.Spec.Resources = &v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Gi")}}
	if got := requests(pod, v1.ResourceMemory); got != 1<<30 {
		t.Errorf("requests %d MiB with a pod-level request of 1Gi", got>>20)
	}
}
