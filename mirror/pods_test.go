package mirror

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podsup/podsup/manifest"
)

// staticPod is a static pod as the supervisor publishes it, of version hash.
func staticPod(name, hash string, phase v1.PodPhase) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-node1", Namespace: "kube-system", UID: types.UID(hash),
			Labels: map[string]string{"component": name},
			Annotations: map[string]string{manifest.AnnotationHash: hash, manifest.AnnotationSource: "file",
				manifest.AnnotationSeen: "2026-01-02T03:04:05Z"}},
		Spec: v1.PodSpec{NodeName: "node1", Containers: []v1.Container{{Name: "main", Image: "busybox"}}},
		Status: v1.PodStatus{Phase: phase, StartTime: &metav1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 678, time.UTC)},
			ContainerStatuses: []v1.ContainerStatus{{Name: "main", RestartCount: 1}}},
	}
}

// mirrorOf is the mirror pod of a static pod as the apiserver holds it,
// with the given status.
func mirrorOf(static *v1.Pod, uid string, status v1.PodStatus) *v1.Pod {
	m := newMirrorPod(static, metav1.OwnerReference{Kind: "Node", Name: "node1"})
	m.UID = types.UID(uid)
	m.Status = status
	return m
}

func TestPlan(t *testing.T) {
	running := staticPod("etcd", "h1", v1.PodRunning)
	newer := staticPod("etcd", "h2", v1.PodRunning)
	current := mirrorStatus(running, nil)
	pending := v1.PodStatus{Phase: v1.PodPending, QOSClass: v1.PodQOSBestEffort}
	deleting := mirrorOf(running, "m1", current)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	foreign := mirrorOf(running, "m1", current)
	delete(foreign.Annotations, manifest.AnnotationMirror)
	changed := mirrorStatus(running, nil)
	changed.ContainerStatuses[0].RestartCount = 2

	tests := []struct {
		name string
		in   planInput
		want action
	}{
		{"nothing", planInput{}, actNone},
		{"new static pod", planInput{static: running, status: current}, actCreate},
		{"new static pod that may have none", planInput{static: running, refusal: "no", status: current}, actRefuse},
		{"status of a new mirror pod", planInput{static: running, mirror: mirrorOf(running, "m1", pending), status: current}, actStatus},
		{"mirror pod already current", planInput{static: running, mirror: mirrorOf(running, "m1", current), status: current}, actNone},
		{"status sent, not yet seen", planInput{static: running, mirror: mirrorOf(running, "m1", pending), status: current,
			sentUID: "m1", sent: &current}, actNone},
		{"status changed since sent", planInput{static: running, mirror: mirrorOf(running, "m1", current), status: changed,
			sentUID: "m1", sent: &current}, actStatus},
		{"status sent to a mirror pod since replaced", planInput{static: running, mirror: mirrorOf(running, "m2", pending), status: current,
			sentUID: "m1", sent: &current}, actStatus},
		{"static pod changed", planInput{static: newer, mirror: mirrorOf(running, "m1", current), status: current}, actRecreate},
		{"static pod changed into one that may have none", planInput{static: newer, mirror: mirrorOf(running, "m1", current), refusal: "no"}, actDelete},
		{"mirror pod deleted by a user", planInput{static: running, mirror: deleting, status: current}, actRecreate},
		{"static pod gone", planInput{gone: true, mirror: mirrorOf(running, "m1", current)}, actDelete},
		{"stale mirror pod, sources not ready", planInput{mirror: mirrorOf(running, "m1", current)}, actWaitStale},
		{"stale mirror pod, sources ready", planInput{mirror: mirrorOf(running, "m1", current), staleOK: true}, actDelete},
		{"a pod that is not a mirror pod, no static pod", planInput{mirror: foreign, staleOK: true}, actNone},
		{"a pod that is not a mirror pod holds the name", planInput{static: running, mirror: foreign, status: current}, actForeign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := plan(tt.in); got != tt.want {
				t.Errorf("plan = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMirrorStatusIsAsStored(t *testing.T) {
	static := staticPod("etcd", "h1", v1.PodRunning)
	st := mirrorStatus(static, &v1.Pod{Status: v1.PodStatus{QOSClass: v1.PodQOSBurstable}})
	if st.StartTime.Nanosecond() != 0 {
		t.Errorf("start time %s keeps its nanoseconds; the apiserver stores seconds, so every sync would patch", st.StartTime)
	}
	if st.QOSClass != v1.PodQOSBurstable {
		t.Errorf("QoS class %q, want the apiserver's, which a status update may not change", st.QOSClass)
	}
	if static.Status.StartTime.Nanosecond() == 0 {
		t.Error("the static pod was modified")
	}
}

func TestNewMirrorPod(t *testing.T) {
	static := staticPod("etcd", "h1", v1.PodRunning)
	prio := int32(2000001000)
	static.Spec.Priority, static.Spec.PriorityClassName = &prio, "system-node-critical"
	controller := true
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: "node1", UID: "n1", Controller: &controller}
	m := newMirrorPod(static, owner)
	if m.Name != "etcd-node1" || m.Namespace != "kube-system" || m.Spec.NodeName != "node1" {
		t.Errorf("identity %s/%s on %q", m.Namespace, m.Name, m.Spec.NodeName)
	}
	for key, want := range map[string]string{manifest.AnnotationMirror: "h1", manifest.AnnotationHash: "h1",
		manifest.AnnotationSource: "file", manifest.AnnotationSeen: "2026-01-02T03:04:05Z"} {
		if got := m.Annotations[key]; got != want {
			t.Errorf("annotation %s = %q, want %q", key, got, want)
		}
	}
	if len(m.OwnerReferences) != 1 || m.OwnerReferences[0] != owner {
		t.Errorf("owner references %v", m.OwnerReferences)
	}
	if m.Spec.Priority != nil || m.UID != "" || m.Status.Phase != "" {
		t.Errorf("priority %v, UID %q, phase %q: left for the apiserver to set", m.Spec.Priority, m.UID, m.Status.Phase)
	}
	if static.Spec.Priority == nil || static.Annotations[manifest.AnnotationMirror] != "" {
		t.Error("the static pod was modified")
	}
}

// TestPatchBase: a status patch goes from what podsup last wrote to that
// mirror pod, not from the informer's copy, which may lag: after a podsup
// restart, NotReady then Ready written in quick succession made an empty
// patch from the informer's old Ready, and the mirror pod stayed NotReady.
func TestPatchBase(t *testing.T) {
	ready := v1.PodStatus{Conditions: []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}}
	notReady := v1.PodStatus{Conditions: []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionFalse}}}
	stale := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "m1"}, Status: ready}
	if got := patchBase(planInput{mirror: stale, sentUID: "m1", sent: &notReady, status: ready}); got.Conditions[0].Status != v1.ConditionFalse {
		t.Errorf("base %v, want the NotReady last written", got.Conditions)
	}
	if got := patchBase(planInput{mirror: stale, sentUID: "m0", sent: &notReady, status: ready}); got.Conditions[0].Status != v1.ConditionTrue {
		t.Errorf("base %v, want the informer's for a mirror pod written to before it was recreated", got.Conditions)
	}
	if got := patchBase(planInput{mirror: stale, status: notReady}); got.Conditions[0].Status != v1.ConditionTrue {
		t.Errorf("base %v, want the informer's when nothing was written yet", got.Conditions)
	}
}
