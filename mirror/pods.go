package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/manifest"
)

// action is what a static pod's mirror pod needs next.
type action int

const (
	actNone      action = iota
	actCreate           // create the mirror pod
	actRecreate         // delete the mirror pod, of another version or being deleted, and create it anew
	actDelete           // delete the mirror pod: its static pod is gone
	actStatus           // patch the mirror pod's status
	actRefuse           // the pod may have no mirror pod: report it once
	actWaitStale        // a mirror pod no static pod claims yet: look again later
	actForeign          // a pod that is not a mirror pod holds the name
)

var actionNames = [...]string{"none", "create", "recreate", "delete", "status", "refuse", "wait-stale", "foreign"}

func (a action) String() string { return actionNames[a] }

// planInput is what a mirror pod's next action is decided from.
type planInput struct {
	static  *v1.Pod // the static pod with its status; nil: none
	gone    bool    // the static pod was removed while podsup ran
	mirror  *v1.Pod // the pod of the same name bound to this node; nil: none
	refusal string  // why the static pod may have no mirror pod; "": it may
	staleOK bool    // mirror pods no static pod claims may be deleted
	status  v1.PodStatus
	sentUID types.UID     // the mirror pod sent was written to
	sent    *v1.PodStatus // the status last written to it
}

// plan decides what a mirror pod needs, as the kubelet does in syncPod and
// HandlePodCleanups: a mirror pod of another version, or one a user deleted
// (a deletion timestamp), is deleted and created anew; a pod that is not a
// mirror pod is never touched.
func plan(in planInput) action {
	if in.mirror != nil && !isMirror(in.mirror) {
		if in.static != nil {
			return actForeign
		}
		return actNone
	}
	if in.static == nil {
		switch {
		case in.mirror == nil:
			return actNone
		case in.gone || in.staleOK:
			return actDelete
		default:
			return actWaitStale
		}
	}
	if in.mirror != nil && (in.mirror.DeletionTimestamp != nil || in.mirror.Annotations[manifest.AnnotationMirror] != configHash(in.static)) {
		if in.refusal != "" {
			return actDelete
		}
		return actRecreate
	}
	if in.mirror == nil {
		if in.refusal != "" {
			return actRefuse
		}
		return actCreate
	}
	if in.sent != nil && in.sentUID == in.mirror.UID {
		if equality.Semantic.DeepEqual(*in.sent, in.status) {
			return actNone
		}
	} else if equality.Semantic.DeepEqual(in.mirror.Status, in.status) {
		return actNone
	}
	return actStatus
}

func isMirror(pod *v1.Pod) bool {
	_, ok := pod.Annotations[manifest.AnnotationMirror]
	return ok
}

// configHash is a static pod's version: its config.hash annotation, which
// is its UID.
func configHash(pod *v1.Pod) string {
	if h := pod.Annotations[manifest.AnnotationHash]; h != "" {
		return h
	}
	return string(pod.UID)
}

// mirrorStatus is the static pod's status as the mirror pod shows it: as
// stored by the apiserver (times in whole seconds), with the QoS class the
// apiserver computed, which a status update may not change.
func mirrorStatus(static, mirror *v1.Pod) v1.PodStatus {
	var st v1.PodStatus
	data, err := json.Marshal(static.Status)
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		st = *static.Status.DeepCopy() // k8s.io/api types always encode
	}
	if mirror != nil && mirror.Status.QOSClass != "" {
		st.QOSClass = mirror.Status.QOSClass
	}
	return st
}

// newMirrorPod is the mirror pod of a static pod, as the kubelet makes it:
// the static pod's labels and annotations with config.mirror added, its
// spec, and its Node as controlling owner (which NodeRestriction requires).
func newMirrorPod(static *v1.Pod, owner metav1.OwnerReference) *v1.Pod {
	m := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: static.Name, Namespace: static.Namespace,
			Labels: map[string]string{}, Annotations: map[string]string{},
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		Spec: *static.Spec.DeepCopy(),
	}
	for k, v := range static.Labels {
		m.Labels[k] = v
	}
	for k, v := range static.Annotations {
		m.Annotations[k] = v
	}
	m.Annotations[manifest.AnnotationMirror] = configHash(static)
	// The Priority admission plugin computes both from the class and
	// refuses a pod that sets other values; podsup fills them in from the
	// built-in classes, which a cluster may define otherwise.
	m.Spec.Priority, m.Spec.PreemptionPolicy = nil, nil
	return m
}

// syncPod brings one mirror pod in line with its static pod. It returns
// when to look again (zero: on the next event or resync), and an error to
// retry with back-off.
func (r *Reporter) syncPod(ctx context.Context, key string) (time.Duration, error) {
	in := planInput{}
	r.mu.Lock()
	rec := r.pods[key]
	if rec != nil {
		in.static, in.gone, in.sentUID, in.sent = rec.pod, rec.gone, rec.sentUID, rec.sent
	}
	r.mu.Unlock()
	if obj, ok, _ := r.informer.GetStore().GetByKey(key); ok {
		if p, ok := obj.(*v1.Pod); ok && p.Spec.NodeName == r.nodeName {
			in.mirror = p
		}
	}
	if in.static != nil {
		if field, what := apiReference(in.static); field != "" {
			in.refusal = fmt.Sprintf("%s refers to %s, and NodeRestriction lets no node create a mirror pod that refers to API objects", field, what)
		}
		in.status = mirrorStatus(in.static, in.mirror)
	}
	wait := r.staleWait()
	in.staleOK = wait == 0
	act := plan(in)
	switch act {
	case actNone:
		if in.static == nil && in.mirror == nil {
			r.forget(key)
		}
		return 0, nil
	case actWaitStale:
		return wait, nil
	case actForeign:
		r.refuse(ctx, key, in.static, fmt.Sprintf("a pod that is not a mirror pod is named %s on this node", key))
		return refusedRetry, nil
	case actRefuse:
		r.refuse(ctx, key, in.static, in.refusal)
		return 0, nil
	case actDelete:
		reason := "its static pod is gone"
		if in.static != nil {
			reason = "its static pod may have no mirror pod"
		} else if !in.gone {
			reason = "no static pod claims it"
		}
		return 0, r.deleteMirror(ctx, in.mirror, reason)
	case actRecreate:
		reason := "its static pod changed"
		if in.mirror.DeletionTimestamp != nil {
			reason = "it is being deleted"
		}
		if err := r.deleteMirror(ctx, in.mirror, reason); err != nil {
			return 0, err
		}
		return r.createMirror(ctx, key, in.static, mirrorStatus(in.static, nil))
	case actCreate:
		return r.createMirror(ctx, key, in.static, in.status)
	case actStatus:
		return 0, r.patchStatus(ctx, key, in.mirror, patchBase(in), in.status)
	}
	return 0, nil
}

// staleWait is how long mirror pods no static pod claims must still be
// kept: until the sources have reported and staleGrace has passed since
// start-up.
func (r *Reporter) staleWait() time.Duration {
	if !r.o.sourcesReady() {
		return r.o.staleGrace
	}
	return max(r.o.staleGrace-r.o.clock.Since(r.started), 0)
}

// forget drops the record of a pod that is gone along with its mirror pod.
func (r *Reporter) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec := r.pods[key]; rec != nil && rec.pod == nil {
		delete(r.pods, key)
	}
}

// createMirror creates a static pod's mirror pod and writes its status.
func (r *Reporter) createMirror(ctx context.Context, key string, static *v1.Pod, status v1.PodStatus) (time.Duration, error) {
	owner, ok := r.nodeOwner()
	if !ok {
		return 0, fmt.Errorf("create mirror pod %s: the node is not registered yet", key)
	}
	rctx, cancel := requestContext(ctx)
	created, err := r.client.CoreV1().Pods(static.Namespace).Create(rctx, newMirrorPod(static, owner), metav1.CreateOptions{})
	cancel()
	switch {
	case apierrors.IsAlreadyExists(err):
		// The informer has not shown it yet, or it is someone else's.
		rctx, cancel := requestContext(ctx)
		created, err = r.client.CoreV1().Pods(static.Namespace).Get(rctx, static.Name, metav1.GetOptions{})
		cancel()
		if err != nil {
			return 0, fmt.Errorf("get mirror pod %s: %w", key, err)
		}
		if !isMirror(created) || created.Spec.NodeName != r.nodeName {
			r.refuse(ctx, key, static, fmt.Sprintf("a pod that is not this node's mirror pod is named %s", key))
			return refusedRetry, nil
		}
		if created.Annotations[manifest.AnnotationMirror] != configHash(static) || created.DeletionTimestamp != nil {
			return 0, fmt.Errorf("mirror pod %s of another version still exists", key)
		}
	case isRefusal(err):
		r.refuse(ctx, key, static, fmt.Sprintf("the apiserver refused it: %v", err))
		return refusedRetry, nil
	case err != nil:
		return 0, fmt.Errorf("create mirror pod %s: %w", key, err)
	default:
		r.o.log.Info("mirror pod created", "pod", key, "uid", created.UID, "hash", configHash(static))
	}
	return 0, r.patchStatus(ctx, key, created, created.Status, mirrorStatus(static, created))
}

// deleteMirror deletes a mirror pod at once (grace period 0, as the kubelet
// does: nothing runs for it), and only the one seen (a UID precondition).
func (r *Reporter) deleteMirror(ctx context.Context, mirror *v1.Pod, reason string) error {
	key := manifest.PodKey(mirror)
	grace := int64(0)
	uid := mirror.UID
	rctx, cancel := requestContext(ctx)
	defer cancel()
	err := r.client.CoreV1().Pods(mirror.Namespace).Delete(rctx, mirror.Name,
		metav1.DeleteOptions{GracePeriodSeconds: &grace, Preconditions: &metav1.Preconditions{UID: &uid}})
	switch {
	case apierrors.IsNotFound(err):
		return nil // gone already: the informer had not shown it yet
	case err != nil:
		return fmt.Errorf("delete mirror pod %s: %w", key, err)
	}
	r.o.log.Info("mirror pod deleted", "pod", key, "uid", uid, "reason", reason)
	return nil
}

// patchBase is the status a mirror pod has, which a patch goes from: the
// one podsup last wrote to it, else the informer's. The informer's copy
// may not have caught up with the last write: after a podsup restart, a
// status written NotReady and then Ready made an empty patch from the
// informer's old Ready, and the mirror pod stayed NotReady.
func patchBase(in planInput) v1.PodStatus {
	if in.sent != nil && in.mirror != nil && in.sentUID == in.mirror.UID {
		return *in.sent
	}
	return in.mirror.Status
}

// patchStatus writes the status to the mirror pod, as a strategic merge
// patch from base, the status it has, with its UID as precondition, as the
// kubelet's status manager does.
func (r *Reporter) patchStatus(ctx context.Context, key string, mirror *v1.Pod, base, status v1.PodStatus) error {
	oldData, err := json.Marshal(v1.Pod{Status: base})
	if err != nil {
		return err
	}
	newData, err := json.Marshal(v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: mirror.UID}, Status: status})
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, v1.Pod{})
	if err != nil {
		return fmt.Errorf("status patch of %s: %w", key, err)
	}
	rctx, cancel := requestContext(ctx)
	defer cancel()
	_, err = r.client.CoreV1().Pods(mirror.Namespace).Patch(rctx, mirror.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if isRefusal(err) {
		// Not retried until the status changes: the same patch would be
		// refused again.
		r.o.log.Warn("the apiserver refused a mirror pod's status", "pod", key, "err", err)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("patch status of mirror pod %s: %w", key, err)
	}
	r.mu.Lock()
	if rec := r.pods[key]; rec != nil {
		rec.sentUID, rec.sent = mirror.UID, &status
	}
	r.mu.Unlock()
	r.o.log.Debug("mirror pod status written", "pod", key, "phase", status.Phase)
	return nil
}

// isRefusal tells the apiserver's answers that the same request would get
// again: forbidden (NodeRestriction, admission) or invalid.
func isRefusal(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}

// refuse reports, once per version of the pod, that it has no mirror pod
// and why: in podsup's events and log, and as an event on the Node.
func (r *Reporter) refuse(ctx context.Context, key string, static *v1.Pod, why string) {
	hash := configHash(static)
	r.mu.Lock()
	rec := r.pods[key]
	first := rec != nil && rec.refused != hash
	if first {
		rec.refused = hash
	}
	r.mu.Unlock()
	if !first {
		return
	}
	msg := fmt.Sprintf("no mirror pod: %s; the pod runs, but the cluster does not show it", why)
	r.o.events.Eventf(events.Warning, reasonMirrorRefused, key, "", "%s", msg)
	r.nodeEvent(ctx, v1.EventTypeWarning, reasonMirrorRefused, fmt.Sprintf("static pod %s: %s", key, msg))
}

// reasonMirrorRefused is the reason of the event a refused mirror pod makes.
const reasonMirrorRefused = "MirrorPodRefused"
