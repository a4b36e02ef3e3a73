package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/manifest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// harness is a reporter on a fake clientset and a fake clock. Tests that
// wait for the reporter run in a synctest bubble (synctest.Test): there a
// sleep or a poll's limit is on the bubble's clock, which moves only once
// every goroutine of the bubble waits, so the reporter has done all it can
// before the test looks, however busy the machine is.
type harness struct {
	t      *testing.T
	client *fake.Clientset
	clock  *testingclock.FakeClock
	events *events.Recorder
	r      *Reporter
	ready  atomic.Pointer[error]
}

func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	h := &harness{t: t, client: fake.NewClientset(), clock: testingclock.NewFakeClock(t0)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h.events = events.NewRecorder(100, log, h.clock)
	capacity := v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourcePods: resource.MustParse("110")}
	opts = append([]Option{WithClock(h.clock), WithLogger(log), WithEvents(h.events), WithHostname("host1"),
		WithReady(func() error {
			if err := h.ready.Load(); err != nil {
				return *err
			}
			return nil
		}),
		WithResources(capacity, capacity), WithVersion("v1.2.3"), WithAgentVersion("v0.9.0"),
		WithRuntimeVersion(func(context.Context) (string, error) { return "containerd://1.6.20", nil }),
		withHostInfo(func() v1.NodeSystemInfo { return v1.NodeSystemInfo{KernelVersion: "6.1.0", OSImage: "Debian"} }),
	}, opts...)
	r, err := New(h.client, "node1", opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	return h
}

// run runs the reporter until the test ends, and then waits for its
// informer too, which Run does not: no goroutine of the test outlives it.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.r.Run(ctx); close(done) }()
	h.t.Cleanup(func() {
		cancel()
		<-done
		eventually(h.t, "informer stopped", func() error {
			if !h.r.informer.IsStopped() {
				return errors.New("still running")
			}
			return nil
		})
	})
}

// advance moves the clock a step at a time until cond holds, at most 200
// steps, letting the reporter react after each step: in a bubble, the
// sleep ends once it has done all the step lets it do.
func (h *harness) advance(what string, step time.Duration, cond func() error) {
	h.t.Helper()
	var err error
	for range 200 {
		if err = cond(); err == nil {
			return
		}
		h.clock.Step(step)
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("%s: %v", what, err)
}

func (h *harness) node() (*v1.Node, error) {
	return h.client.CoreV1().Nodes().Get(context.Background(), "node1", metav1.GetOptions{})
}

// count counts the recorded actions of a verb on a resource (and
// subresource).
func (h *harness) count(verb, resource, subresource string) int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == subresource {
			n++
		}
	}
	return n
}

// eventually polls cond until it holds, or fails the test with its last
// error after a minute: of the bubble's time in a bubble, where the reporter
// gets all the time it needs; outside (a real apiserver), long enough for a
// loaded machine.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err = cond(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

func condition(n *v1.Node, typ v1.NodeConditionType) v1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return v1.NodeCondition{}
}

func TestRegistersNodeAndKeepsItAlive(t *testing.T) {
	synctest.Test(t, testRegistersNodeAndKeepsItAlive)
}

func testRegistersNodeAndKeepsItAlive(t *testing.T) {
	h := newHarness(t, WithLabels(map[string]string{"example.com/rack": "r1"}),
		WithTaints([]v1.Taint{{Key: "example.com/edge", Effect: v1.TaintEffectNoSchedule}}),
		WithKubeletPort(10260),
		WithPressure(func() []v1.NodeCondition {
			return []v1.NodeCondition{{Type: v1.NodeDiskPressure, Status: v1.ConditionTrue, Reason: "KubeletHasDiskPressure"}}
		}))
	h.run()
	eventually(t, "node registered and Ready", func() error {
		n, err := h.node()
		if err != nil {
			return err
		}
		if c := condition(n, v1.NodeReady); c.Status != v1.ConditionTrue {
			return fmt.Errorf("ready %+v", c)
		}
		return nil
	})
	n, _ := h.node()
	for k, want := range map[string]string{"example.com/rack": "r1", v1.LabelHostname: "host1", v1.LabelOSStable: "linux"} {
		if n.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], want)
		}
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != "example.com/edge" {
		t.Errorf("taints %v", n.Spec.Taints)
	}
	if v := n.Annotations[AnnotationVersion]; v != "v0.9.0" {
		t.Errorf("annotation %s = %q, want podsup's version", AnnotationVersion, v)
	}
	info := n.Status.NodeInfo
	if info.KubeletVersion != "v1.2.3" || info.ContainerRuntimeVersion != "containerd://1.6.20" || info.KernelVersion != "6.1.0" {
		t.Errorf("node info %+v", info)
	}
	if q := n.Status.Allocatable[v1.ResourcePods]; q.Value() != 110 {
		t.Errorf("allocatable pods %s", q.String())
	}
	if c := condition(n, v1.NodeDiskPressure); c.Status != v1.ConditionTrue {
		t.Errorf("disk pressure %+v, want the eviction manager's", c)
	}
	for _, typ := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodePIDPressure} {
		if c := condition(n, typ); c.Status != v1.ConditionFalse {
			t.Errorf("%s %+v, want False when not reported", typ, c)
		}
	}
	if a := n.Status.Addresses; len(a) != 1 || a[0].Type != v1.NodeHostName || a[0].Address != "host1" {
		t.Errorf("addresses %v", a)
	}
	if p := n.Status.DaemonEndpoints.KubeletEndpoint.Port; p != 10260 {
		t.Errorf("kubelet endpoint port %d, want 10260, that of --address", p)
	}

	renewed := func(at time.Time) func() error {
		return func() error {
			l, err := h.client.CoordinationV1().Leases(LeaseNamespace).Get(context.Background(), "node1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if l.Spec.RenewTime == nil || l.Spec.RenewTime.Time.Before(at) || *l.Spec.HolderIdentity != "node1" || *l.Spec.LeaseDurationSeconds != 40 {
				return fmt.Errorf("lease %+v", l.Spec)
			}
			if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != n.UID {
				return fmt.Errorf("lease owners %v", l.OwnerReferences)
			}
			return nil
		}
	}
	eventually(t, "lease created", renewed(t0))
	patches := h.count("patch", "nodes", "status")
	h.advance("lease renewed after 10s", time.Second, renewed(t0.Add(10*time.Second)))
	if n := h.count("patch", "nodes", "status"); n != patches {
		t.Errorf("%d status patches with nothing changed, want none: the lease is the heartbeat", n-patches)
	}

	down := errors.New("containerd: connection refused")
	h.ready.Store(&down)
	h.advance("NotReady", time.Second, func() error {
		n, err := h.node()
		if err != nil {
			return err
		}
		c := condition(n, v1.NodeReady)
		if c.Status != v1.ConditionFalse || c.Message != down.Error() || !c.LastTransitionTime.Time.After(t0) {
			return fmt.Errorf("ready %+v", c)
		}
		return nil
	})
}

func TestMirrorPodLifecycle(t *testing.T) { synctest.Test(t, testMirrorPodLifecycle) }

func testMirrorPodLifecycle(t *testing.T) {
	h := newHarness(t)
	etcd := staticPod("etcd", "h1", v1.PodRunning)
	secret := staticPod("secret", "s1", v1.PodRunning)
	secret.Spec.Containers[0].EnvFrom = []v1.EnvFromSource{{SecretRef: &v1.SecretEnvSource{}}}
	h.r.Update(manifest.PodKey(etcd), etcd)
	h.r.Update(manifest.PodKey(secret), secret)
	h.run()

	mirror := func(check func(*v1.Pod) error) func() error {
		return func() error {
			m, err := h.client.CoreV1().Pods("kube-system").Get(context.Background(), "etcd-node1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			return check(m)
		}
	}
	eventually(t, "mirror pod with status", mirror(func(m *v1.Pod) error {
		if m.Annotations[manifest.AnnotationMirror] != "h1" || m.Status.Phase != v1.PodRunning {
			return fmt.Errorf("annotations %v, phase %s", m.Annotations, m.Status.Phase)
		}
		if o := m.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].Controller == nil || !*o[0].Controller {
			return fmt.Errorf("owners %v", o)
		}
		return nil
	}))
	patches := h.count("patch", "pods", "status")
	for range 3 {
		h.r.Update(manifest.PodKey(etcd), etcd) // the same status, published again
		h.clock.Step(DefaultStatusUpdateFrequency)
		synctest.Wait()
	}
	if n := h.count("patch", "pods", "status"); n != patches {
		t.Errorf("%d status patches for an unchanged status", n-patches)
	}
	if evs := h.events.List(manifest.PodKey(secret)); len(evs) != 1 || evs[0].Reason != reasonMirrorRefused || evs[0].Count != 1 {
		t.Errorf("events of the refused pod after resyncs: %+v", evs)
	}
	if h.count("create", "pods", "") != 1 {
		t.Errorf("%d pods created, want the one mirror pod", h.count("create", "pods", ""))
	}

	h.r.Update(manifest.PodKey(etcd), nil)
	eventually(t, "mirror pod deleted", func() error {
		_, err := h.client.CoreV1().Pods("kube-system").Get(context.Background(), "etcd-node1", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
}

// TestBacksOffWhileTheAPIServerFails: failed calls are retried after a
// back-off on the injected clock, not in a loop, and succeed once the
// apiserver answers again.
func TestBacksOffWhileTheAPIServerFails(t *testing.T) {
	synctest.Test(t, testBacksOffWhileTheAPIServerFails)
}

func testBacksOffWhileTheAPIServerFails(t *testing.T) {
	h := newHarness(t)
	var failing atomic.Bool
	failing.Store(true)
	h.client.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}
		return false, nil, nil
	})
	etcd := staticPod("etcd", "h1", v1.PodRunning)
	h.r.Update(manifest.PodKey(etcd), etcd)
	h.run()
	eventually(t, "first attempt", func() error {
		if h.count("create", "pods", "") == 0 {
			return errors.New("no create yet")
		}
		return nil
	})
	synctest.Wait()
	if n := h.count("create", "pods", ""); n != 1 {
		t.Fatalf("%d attempts before the clock moved, want 1", n)
	}
	h.advance("second attempt after the back-off", retryInitial/5, func() error {
		if n := h.count("create", "pods", ""); n != 2 {
			return fmt.Errorf("%d attempts", n)
		}
		return nil
	})
	failing.Store(false)
	h.advance("mirror pod created once the apiserver answers", retryInitial/5, func() error {
		_, err := h.client.CoreV1().Pods("kube-system").Get(context.Background(), "etcd-node1", metav1.GetOptions{})
		return err
	})
}

// TestUpdateNeverBlocks: a hung apiserver does not hold up the supervisor's
// status listener. It runs outside a bubble: an Update stuck on a lock
// would stop the bubble's clock, and the test would never end.
func TestUpdateNeverBlocks(t *testing.T) {
	h := newHarness(t)
	hang := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(hang) }) })
	h.client.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-hang
		return true, nil, apierrors.NewTimeoutError("hung", 1)
	})
	h.client.PrependWatchReactor("*", k8stesting.DefaultWatchReactor(nil, nil))
	h.run()
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			p := staticPod(fmt.Sprintf("p%d", i%10), "h1", v1.PodRunning)
			h.r.Update(manifest.PodKey(p), p)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Update blocked on a hung apiserver")
	}
	once.Do(func() { close(hang) })
}

// TestAdoptedNodeGetsTheVersion: a Node registered by an older podsup is
// adopted, and its version annotation brought up to date.
func TestAdoptedNodeGetsTheVersion(t *testing.T) { synctest.Test(t, testAdoptedNodeGetsTheVersion) }

func testAdoptedNodeGetsTheVersion(t *testing.T) {
	h := newHarness(t)
	old := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", Annotations: map[string]string{AnnotationVersion: "v0.1.0", "keep": "me"}}}
	if _, err := h.client.CoreV1().Nodes().Create(context.Background(), old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.run()
	eventually(t, "the adopted node's annotation updated", func() error {
		n, err := h.node()
		if err != nil {
			return err
		}
		if n.Annotations[AnnotationVersion] != "v0.9.0" || n.Annotations["keep"] != "me" {
			return fmt.Errorf("annotations %v", n.Annotations)
		}
		return nil
	})
}
