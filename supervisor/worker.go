package supervisor

import (
	"context"
	"errors"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/runtime"
)

// podWorker keeps one pod as desired. The supervisor hands it the latest
// desired state through a one-slot mailbox; the worker's goroutine does
// everything else, so a pod's containers are only ever touched by one
// goroutine.
type podWorker struct {
	key string
	s   *Supervisor

	mu         sync.Mutex
	desired    *v1.Pod // the latest desired pod; nil once it is to be removed
	generation int     // bumped by every update, so a sync knows it is stale
	cancelSync context.CancelFunc
	wake       chan struct{} // size 1: a pending wake-up is never lost, never doubled

	// Owned by the worker goroutine.
	lastPod        *v1.Pod // the last desired pod, for its grace period once removed
	failing        map[string]*failure
	sandboxFailure *failure
	stopped        map[string]bool
	status         *v1.PodStatus
	lastErr        string // the last sync failure logged
	evictions      int    // how many times the pod was evicted, for the back-off
	lastDenied     string // the reason admission last refused the pod, logged once

	// evicted is the pod's current eviction, guarded by mu: set by the
	// supervisor, cleared by the worker when the pod may run again.
	evicted *eviction
}

// eviction is a pod stopped to protect the machine or itself: it stays
// Failed with reason Evicted until readmit says it may run again.
type eviction struct {
	message string
	at      time.Time
	grace   *int64
	readmit func(now time.Time) bool
}

// evict records an eviction and wakes the worker.
func (w *podWorker) evict(e *eviction) {
	w.mu.Lock()
	if w.evicted == nil {
		w.evicted = e
	}
	w.mu.Unlock()
	w.notify()
}

// currentEviction returns the eviction in force, clearing one whose
// readmission has come.
func (w *podWorker) currentEviction(now time.Time) *eviction {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.evicted != nil && w.evicted.readmit(now) {
		w.s.log.Info("readmitting an evicted pod", "pod", w.key)
		w.s.events.Eventf(events.Normal, "Readmitted", w.key, "", "The pod runs again after its eviction: %s", w.evicted.message)
		w.evicted = nil
	}
	return w.evicted
}

func newPodWorker(s *Supervisor, key string, pod *v1.Pod) *podWorker {
	return &podWorker{key: key, s: s, desired: pod, wake: make(chan struct{}, 1),
		failing: map[string]*failure{}, stopped: map[string]bool{}}
}

// update hands the worker a new desired state (nil removes the pod). A sync
// in progress for an older state is cancelled: the newest state wins.
func (w *podWorker) update(pod *v1.Pod) {
	w.mu.Lock()
	w.desired = pod
	w.generation++
	if w.cancelSync != nil {
		w.cancelSync()
	}
	w.mu.Unlock()
	w.notify()
}

// notify wakes the worker without ever blocking.
func (w *podWorker) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) latest() (*v1.Pod, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired, w.generation
}

// run syncs the pod whenever it is woken, when a back-off expires, and every
// resync period, until ctx ends or the pod is removed.
func (w *podWorker) run(ctx context.Context) {
	defer w.s.wg.Done()
	w.notify() // the first sync, at once
	timer := w.s.clock.NewTimer(w.s.resync)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C():
		}
		pod, gen := w.latest()
		syncCtx, cancel := context.WithCancel(ctx)
		w.mu.Lock()
		if gen != w.generation {
			w.mu.Unlock()
			cancel()
			w.notify()
			continue
		}
		w.cancelSync = cancel
		w.mu.Unlock()
		began := w.s.clock.Now()
		next, err := w.sync(syncCtx, pod)
		w.s.metrics.SyncDone(w.s.clock.Since(began), err)
		cancel()
		w.mu.Lock()
		w.cancelSync = nil
		w.mu.Unlock()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			// A lasting failure (containerd down) is logged once, not on
			// every retry.
			if msg := err.Error(); msg != w.lastErr {
				w.s.log.Warn("pod sync failed; will retry", "pod", w.key, "err", err)
				w.lastErr = msg
			}
			next = w.s.clock.Now().Add(w.s.retry)
		} else if err == nil && w.lastErr != "" {
			w.s.log.Info("pod sync works again", "pod", w.key)
			w.lastErr = ""
		}
		if pod == nil && err == nil && w.s.workerDone(w) {
			return
		}
		delay := w.s.resync
		if !next.IsZero() {
			delay = min(max(next.Sub(w.s.clock.Now()), 0), delay)
		}
		timer.Stop()
		if delay == 0 {
			// Due already: look again at once, not when a timer of no
			// duration fires (a fake clock's fires only when stepped).
			w.notify()
			delay = w.s.resync
		}
		timer.Reset(delay)
	}
}

// sync observes the pod, plans, executes and publishes its status. It
// returns when the pod next needs a look (zero: the resync period).
func (w *podWorker) sync(ctx context.Context, pod *v1.Pod) (time.Time, error) {
	s := w.s
	st, err := s.rt.PodState(ctx, w.key)
	if err != nil {
		s.setContainerdDown(err)
		return time.Time{}, err
	}
	s.setContainerdDown(nil)
	if pod != nil {
		w.lastPod = pod
	}
	now := s.clock.Now()
	in := planInput{pod: pod, state: st, now: now, backoff: s.backoff, unhealthy: s.unhealthy(w.key), probes: s.probes,
		failing: map[string]time.Time{}, stopped: w.stopped}
	ev := w.currentEviction(now)
	if ev != nil && pod != nil {
		in.evicted, in.evictionGrace = true, ev.grace
	}
	for name, f := range w.failing {
		in.failing[name] = f.retryAt
	}
	if w.sandboxFailure != nil {
		in.sandboxRetry = w.sandboxFailure.retryAt
	}
	denied := w.admit(pod, st, ev)
	var plan podActions
	if denied == nil {
		plan = computePodActions(in)
	} else {
		plan.wakeAt(now.Add(evictionCheck))
	}
	changed, execErr := w.execute(ctx, pod, st, &plan)
	if pod == nil {
		if execErr != nil {
			return time.Time{}, execErr
		}
		if err := s.volumes.Cleanup(w.key); err != nil {
			return time.Time{}, err
		}
		if err := s.rt.CleanupPod(ctx, w.key, w.lastNamespace(), w.lastName()); err != nil {
			return time.Time{}, err
		}
		return time.Time{}, nil
	}
	if in.evicted && execErr == nil {
		// An evicted pod gives back what it took: its volumes go (an
		// emptyDir is made afresh when it is readmitted).
		if err := s.volumes.Cleanup(w.key); err != nil {
			s.log.Warn("cannot remove an evicted pod's volumes", "pod", w.key, "err", err)
		}
	}
	if changed {
		if fresh, err := s.rt.PodState(ctx, w.key); err == nil {
			st = fresh
		}
	}
	status := computeStatus(statusInput{pod: pod, state: st, now: s.clock.Now(), plan: &plan, failing: w.failing,
		sandbox: w.sandboxFailure, probes: s.probes, hostIP: s.hostIP, previous: w.status, evicted: ev, denied: denied})
	w.status = &status
	s.publish(w.key, pod, status, st)
	next := plan.requeue
	if at, ok := activeDeadline(pod, st); ok && at.After(now) {
		// A sandbox made by this sync starts the clock.
		next = minTime(nonZero(next, at), at)
	}
	for _, f := range w.failing {
		wake := f.retryAt
		if !f.shown {
			// Look again shortly, so the status moves on from ErrImagePull
			// to ImagePullBackOff while the retry waits.
			wake = minTime(wake, f.at.Add(time.Second))
		}
		f.shown = true
		if next.IsZero() || wake.Before(next) {
			next = wake
		}
	}
	if f := w.sandboxFailure; f != nil && (next.IsZero() || f.retryAt.Before(next)) {
		next = f.retryAt
	}
	if ev != nil {
		// Look again soon: readmission is a condition, not a time.
		next = minTime(nonZero(next, now.Add(evictionCheck)), now.Add(evictionCheck))
	}
	return next, execErr
}

// admit asks whether a pod that has nothing in containerd yet may start
// (the node may be under pressure); it returns why not, or nil. Pods that
// already run are never held back here: eviction decides about them.
func (w *podWorker) admit(pod *v1.Pod, st *runtime.PodState, ev *eviction) *denial {
	if pod == nil || ev != nil || len(st.Sandboxes) > 0 || len(st.Containers) > 0 {
		w.lastDenied = ""
		return nil
	}
	ok, reason, message := w.s.admit(pod)
	if ok {
		if w.lastDenied != "" {
			w.s.log.Info("pod admitted", "pod", w.key)
		}
		w.lastDenied = ""
		return nil
	}
	if w.lastDenied != reason {
		w.s.log.Warn("pod not admitted; it waits", "pod", w.key, "reason", reason, "message", message)
		w.s.events.Eventf(events.Warning, reason, w.key, "", "%s", message)
	}
	w.lastDenied = reason
	return &denial{reason: reason, message: message}
}

// denial is why a pod may not start yet.
type denial struct{ reason, message string }

func (w *podWorker) lastNamespace() string {
	if w.lastPod != nil {
		return w.lastPod.Namespace
	}
	ns, _, _ := cutKey(w.key)
	return ns
}

func (w *podWorker) lastName() string {
	if w.lastPod != nil {
		return w.lastPod.Name
	}
	_, name, _ := cutKey(w.key)
	return name
}

func cutKey(key string) (string, string, bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// evictionCheck is how often an evicted pod's readmission is looked at.
const evictionCheck = 5 * time.Second

func nonZero(t, fallback time.Time) time.Time {
	if t.IsZero() {
		return fallback
	}
	return t
}
