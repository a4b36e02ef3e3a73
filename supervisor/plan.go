package supervisor

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
)

// planInput is everything the planner looks at.
type planInput struct {
	pod     *v1.Pod // desired; nil when the pod is to be removed
	state   *runtime.PodState
	now     time.Time
	backoff BackoffPolicy
	// unhealthy are running containers a liveness or startup probe
	// condemned, by container ID.
	unhealthy map[string]Condemned
	// failing are containers whose last start failed and must wait until
	// the given time before the next try (image pull back-off and the like).
	failing map[string]time.Time
	// sandboxRetry is when a failed sandbox may be tried again.
	sandboxRetry time.Time
	// stopped are sandboxes this worker already stopped because their pod
	// finished, so they are not stopped again on every sync.
	stopped map[string]bool
	// evicted is set while the pod is evicted: everything is stopped, with
	// evictionGrace, and nothing starts.
	evicted       bool
	evictionGrace *int64
	// probes tell whether a running sidecar has started (its startup
	// probe, if any, passed), so the next init container may start.
	probes ProbeResults
}

// startAction starts one instance of a container.
type startAction struct {
	container *v1.Container
	init      bool
	attempt   int
	// restartBase is the attempt at which this version of the pod first
	// started the container: its restart count is attempt - restartBase.
	restartBase int
	backoff     time.Duration
	last        *runtime.Termination
	// replaces is the instance this start follows (killed first when it
	// runs); its termination becomes the new instance's last state. It is
	// removed only once the new instance started: if the start fails, it
	// stays, and with it the restart count.
	replaces *runtime.Container
}

// killAction stops a running container and removes it.
type killAction struct {
	container *runtime.Container
	reason    string
	grace     *int64 // a probe's own grace period, when it sets one
}

// podActions is what one sync of a pod does, in this order: kill the whole
// pod, kill and remove single containers, create the sandbox, start
// containers, and for a finished pod remove its sandbox.
type podActions struct {
	killPod        bool // stop and remove every container and sandbox
	killReason     string
	createSandbox  bool
	sandboxAttempt int
	kill           []killAction
	remove         []*runtime.Container // dead instances nobody needs
	staleSandboxes []*runtime.Sandbox   // sandboxes older than the current one
	start          []startAction
	// stopSandbox stops the sandbox of a finished pod and frees its
	// network; its record stays, so the pod stays finished.
	stopSandbox bool
	// backingOff are containers waiting out a crash-loop back-off, with the
	// time they restart, for the status (CrashLoopBackOff).
	backingOff map[string]time.Time
	// requeue is when the pod needs another look even if nothing happens.
	requeue time.Time
	// deadlineExceeded is set when the pod has run past its
	// activeDeadlineSeconds: its status says so from this sync on.
	deadlineExceeded bool
}

func (a *podActions) wakeAt(t time.Time) {
	if a.requeue.IsZero() || t.Before(a.requeue) {
		a.requeue = t
	}
}

func dead(c *runtime.Container) bool {
	return c.State == runtime.StateExited || c.State == runtime.StateUnknown
}

// sandboxAttemptOf reads the attempt from a sandbox ID (<hash>_pause.<n>).
func sandboxAttemptOf(id string) int {
	i := strings.LastIndexByte(id, '.')
	if i < 0 {
		return 0
	}
	n, _ := strconv.Atoi(id[i+1:])
	return n
}

// currentSandboxID is the newest sandbox's ID, or, when no sandbox is left
// (a finished pod), the newest one its containers name.
func currentSandboxID(st *runtime.PodState) string {
	if sb := st.Sandbox(); sb != nil {
		return sb.ID
	}
	id, best := "", -1
	for _, c := range st.Containers {
		if n := sandboxAttemptOf(c.SandboxID); n > best {
			id, best = c.SandboxID, n
		}
	}
	return id
}

// finished reports whether a pod has run to completion: every app
// container has run in the sandbox of the current spec and ended, and none
// is to be restarted; or an init container failed and is not retried.
// Sidecars do not count: they are stopped once the app containers are done.
func finished(pod *v1.Pod, st *runtime.PodState, sandboxID string) bool {
	if sandboxID == "" {
		return false
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		latest := st.Latest(sandboxID, c.Name)
		if !podspec.IsSidecar(c) && latest != nil && dead(latest) && latest.Exit.ExitCode != 0 && !restarts(pod, c, true, latest.Exit) {
			return true // a failed init container that is not retried fails the pod
		}
	}
	return appsDone(pod, st, sandboxID)
}

// appsDone reports whether every app container has run in the sandbox of
// its current spec and ended for good.
func appsDone(pod *v1.Pod, st *runtime.PodState, sandboxID string) bool {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		latest := st.Latest(sandboxID, c.Name)
		if latest == nil || !dead(latest) || latest.Hash != ContainerHash(c) || restarts(pod, c, false, latest.Exit) {
			return false
		}
	}
	return true
}

// initialized reports whether the app containers have been created in the
// sandbox: from then on the regular init containers are done, and only the
// sidecars are kept running.
func initialized(pod *v1.Pod, st *runtime.PodState, sandboxID string) bool {
	for i := range pod.Spec.Containers {
		if st.Latest(sandboxID, pod.Spec.Containers[i].Name) != nil {
			return true
		}
	}
	return false
}

// activeDeadline is when the pod's activeDeadlineSeconds run out, counted
// from the creation of its current sandbox (its status's startTime); ok is
// false without a deadline or a sandbox.
func activeDeadline(pod *v1.Pod, st *runtime.PodState) (at time.Time, ok bool) {
	sb := st.Sandbox()
	if pod.Spec.ActiveDeadlineSeconds == nil || sb == nil {
		return time.Time{}, false
	}
	return sb.CreatedAt.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second), true
}

// deadlineExceeded reports whether the pod has run past its active
// deadline. A pod whose spec changed since is a new pod, with a new
// sandbox and a deadline of its own.
func deadlineExceeded(pod *v1.Pod, st *runtime.PodState, now time.Time) bool {
	at, ok := activeDeadline(pod, st)
	if !ok || now.Before(at) {
		return false
	}
	sb := st.Sandbox()
	return sb.Hash == PodHash(pod) && !containerSpecChanged(pod, st, sb.ID)
}

// containerSpecChanged reports whether an app container's newest instance in
// the sandbox was made from another spec than the desired one.
func containerSpecChanged(pod *v1.Pod, st *runtime.PodState, sandboxID string) bool {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if latest := st.Latest(sandboxID, c.Name); latest != nil && latest.Hash != ContainerHash(c) {
			return true
		}
	}
	return false
}

// ran reports whether any container of the sandbox has started.
func ran(st *runtime.PodState, sandboxID string) bool {
	for _, c := range st.Containers {
		if c.SandboxID == sandboxID && !c.StartedAt.IsZero() {
			return true
		}
	}
	return false
}

// nextAttempt is the restart count of a container's next instance: one more
// than its newest instance in any sandbox, so counts carry over a sandbox
// that is re-created, as the kubelet's do.
func nextAttempt(st *runtime.PodState, name string) (int, *runtime.Termination) {
	newest := newestInstance(st, name)
	if newest == nil {
		return 0, nil
	}
	return newest.Attempt + 1, newest.Exit
}

// computePodActions decides what one sync does. It is a pure function of
// its input, so every decision is tested with tables.
func computePodActions(in planInput) podActions {
	a := planActions(in)
	if in.pod != nil {
		for i := range a.start {
			a.start[i].restartBase = restartBase(in.state, a.start[i].container.Name, a.start[i].attempt, string(in.pod.UID))
		}
	}
	return a
}

// planActions is computePodActions without the restart bases.
func planActions(in planInput) podActions {
	a := podActions{backingOff: map[string]time.Time{}}
	st := in.state
	if in.pod == nil {
		a.killPod, a.killReason = len(st.Sandboxes)+len(st.Containers) > 0, "the pod was removed from its source"
		return a
	}
	pod := in.pod
	if in.evicted {
		// Its containers go once stopped: their writable layers are what
		// disk pressure wants back, and the pod starts afresh when
		// readmitted.
		for _, c := range st.Containers {
			if c.State == runtime.StateRunning {
				a.kill = append(a.kill, killAction{container: c, reason: "the pod was evicted", grace: in.evictionGrace})
			}
			a.remove = append(a.remove, c)
		}
		if sb := st.Sandbox(); sb != nil && (sb.Ready || !in.stopped[sb.ID]) {
			a.stopSandbox = true
		}
		return a
	}
	podHash := PodHash(pod)
	sb := st.Sandbox()
	current := currentSandboxID(st)
	if at, ok := activeDeadline(pod, st); ok {
		if deadlineExceeded(pod, st, in.now) {
			// Everything stops and stays stopped: the pod has failed.
			a.deadlineExceeded = true
			for _, c := range st.Containers {
				if c.State == runtime.StateRunning {
					a.kill = append(a.kill, killAction{container: c, reason: "the pod's activeDeadlineSeconds passed"})
				}
			}
			a.stopSandbox = sb.Ready || !in.stopped[sb.ID]
			return a
		}
		if in.now.Before(at) {
			a.wakeAt(at)
		}
	}

	if sb == nil || !sb.Ready || sb.Hash != podHash {
		reason := ""
		switch {
		case sb != nil && sb.Hash != podHash, containerSpecChanged(pod, st, current):
			reason = "the pod's spec changed"
		case len(st.Containers) > 0 && (finished(pod, st, current) || (neverRestarts(pod) && ran(st, current))):
			// A finished pod stays finished, and a Never pod whose sandbox
			// died has failed, as with the kubelet.
			a.stopSandbox = sb != nil && !in.stopped[sb.ID]
			return a
		case sb != nil:
			reason = "the pod sandbox died"
		case len(st.Containers) > 0:
			reason = "the pod sandbox is gone"
		}
		if in.now.Before(in.sandboxRetry) {
			a.wakeAt(in.sandboxRetry)
			return a
		}
		a.killPod, a.killReason = reason != "", reason
		a.createSandbox = true
		for _, s := range st.Sandboxes {
			a.sandboxAttempt = max(a.sandboxAttempt, s.Attempt+1)
		}
		for _, c := range st.Containers {
			a.sandboxAttempt = max(a.sandboxAttempt, sandboxAttemptOf(c.SandboxID)+1)
		}
		a.start = firstStarts(pod, st, in)
		if len(pod.Spec.InitContainers) > 0 && podspec.IsSidecar(&pod.Spec.InitContainers[0]) {
			a.wakeAt(in.now) // no exit follows a sidecar's start: look again
		}
		return a
	}

	// The sandbox is fine. Anything of older sandboxes goes.
	for _, c := range st.Containers {
		if c.SandboxID != sb.ID {
			a.dispose(c, "it belongs to a replaced pod sandbox")
		}
	}
	a.staleSandboxes = st.Sandboxes[1:]
	if a.planInit(pod, st, sb, in) {
		a.planApps(pod, st, sb, in)
	}
	a.planOrphans(pod, st, sb)
	if len(a.start) == 0 && len(a.kill) == 0 && finished(pod, st, sb.ID) {
		a.stopSandbox = !in.stopped[sb.ID]
	}
	return a
}

// firstStarts are the starts in a new sandbox: the first init container, or
// every app container when there are none.
func firstStarts(pod *v1.Pod, st *runtime.PodState, in planInput) []startAction {
	if len(pod.Spec.InitContainers) > 0 {
		if retry, ok := in.failing[pod.Spec.InitContainers[0].Name]; ok && in.now.Before(retry) {
			return nil
		}
		c := &pod.Spec.InitContainers[0]
		attempt, last := nextAttempt(st, c.Name)
		return []startAction{{container: c, init: true, attempt: attempt, last: last}}
	}
	var starts []startAction
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if retry, ok := in.failing[c.Name]; ok && in.now.Before(retry) {
			continue
		}
		attempt, last := nextAttempt(st, c.Name)
		starts = append(starts, startAction{container: c, attempt: attempt, last: last})
	}
	return starts
}

// dispose kills a running container or removes a dead one.
func (a *podActions) dispose(c *runtime.Container, reason string) {
	if c.State == runtime.StateRunning {
		a.kill = append(a.kill, killAction{container: c, reason: reason})
	} else {
		a.remove = append(a.remove, c)
	}
}

// planInit runs the init containers in order: a regular one to
// completion, a sidecar until it has started (its startup probe passed).
// Once the app containers exist, it keeps the sidecars running beside them,
// and stops them when the app containers are done for good. It reports
// whether the app containers may run.
func (a *podActions) planInit(pod *v1.Pod, st *runtime.PodState, sb *runtime.Sandbox, in planInput) bool {
	ready := initialized(pod, st, sb.ID)
	done := ready && appsDone(pod, st, sb.ID)
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		latest := st.Latest(sb.ID, c.Name)
		a.removeOlder(st, sb.ID, latest)
		if podspec.IsSidecar(c) {
			if !a.planSidecar(c, latest, done, in) && !ready {
				return false
			}
			continue
		}
		if ready {
			continue // it completed before the app containers were made
		}
		switch {
		case latest == nil:
			a.startFirst(c, true, st, in)
			return false
		case latest.State == runtime.StateCreated:
			a.startAgain(c, true, latest, in)
			return false
		case latest.State == runtime.StateRunning:
			return false
		case latest.Exit.ExitCode == 0:
			continue
		case !restarts(pod, c, true, latest.Exit):
			return false // the pod has failed
		default:
			a.restartAfterBackoff(c, latest, true, in)
			return false
		}
	}
	return true
}

// planSidecar keeps a sidecar running whatever the pod's restart policy,
// until the app containers are done (then it is stopped). It reports
// whether the sidecar has started, so the next init container may.
func (a *podActions) planSidecar(c *v1.Container, latest *runtime.Container, appsDone bool, in planInput) bool {
	switch {
	case appsDone:
		if latest != nil && latest.State == runtime.StateRunning {
			a.kill = append(a.kill, killAction{container: latest, reason: "the pod's app containers have completed"})
		}
		return true
	case latest == nil:
		a.startFirst(c, true, in.state, in)
		a.wakeAt(in.now) // no exit follows a sidecar's start: look again
	case latest.State == runtime.StateCreated:
		a.startAgain(c, true, latest, in)
		a.wakeAt(in.now)
	case latest.State == runtime.StateRunning:
		if verdict, bad := in.unhealthy[latest.ID]; bad {
			a.kill = append(a.kill, killAction{container: latest, reason: verdict.Reason, grace: verdict.GracePeriodSeconds})
			a.start = append(a.start, startAction{container: c, init: true, attempt: latest.Attempt + 1, replaces: latest})
			return false
		}
		return in.probes == nil || in.probes.Started(in.pod, c, latest.ID)
	default:
		a.restartAfterBackoff(c, latest, true, in)
	}
	return false
}

// startFirst starts a container that has no instance in the sandbox yet,
// unless its last start failed and its retry is not due.
func (a *podActions) startFirst(c *v1.Container, init bool, st *runtime.PodState, in planInput) {
	if a.waitAfterFailure(c, in) {
		return
	}
	attempt, last := nextAttempt(st, c.Name)
	a.start = append(a.start, startAction{container: c, init: init, attempt: attempt, last: last})
}

// startAgain replaces an instance that was created but never started (a
// start that was interrupted) with the same attempt.
func (a *podActions) startAgain(c *v1.Container, init bool, latest *runtime.Container, in planInput) {
	if a.waitAfterFailure(c, in) {
		return
	}
	a.start = append(a.start, startAction{container: c, init: init, attempt: latest.Attempt, last: latest.Last, backoff: latest.Backoff, replaces: latest})
}

// planApps keeps each app container running as its spec and the restart
// policy and rules say.
func (a *podActions) planApps(pod *v1.Pod, st *runtime.PodState, sb *runtime.Sandbox, in planInput) {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		latest := st.Latest(sb.ID, c.Name)
		a.removeOlder(st, sb.ID, latest)
		hash := ContainerHash(c)
		switch {
		case latest == nil:
			a.startFirst(c, false, st, in)
		case latest.State == runtime.StateCreated:
			a.startAgain(c, false, latest, in)
		case latest.State == runtime.StateRunning && latest.Hash != hash:
			a.kill = append(a.kill, killAction{container: latest, reason: "its spec changed"})
			a.start = append(a.start, startAction{container: c, attempt: latest.Attempt + 1, replaces: latest})
		case latest.State == runtime.StateRunning:
			if verdict, bad := in.unhealthy[latest.ID]; bad {
				a.kill = append(a.kill, killAction{container: latest, reason: verdict.Reason, grace: verdict.GracePeriodSeconds})
				// A liveness kill ends the container with SIGKILL's code
				// (137) as far as restart rules are concerned.
				if restarts(pod, c, false, &runtime.Termination{ExitCode: 137}) {
					a.start = append(a.start, startAction{container: c, attempt: latest.Attempt + 1, replaces: latest})
				}
			}
		case latest.Hash != hash:
			// A changed spec runs, whatever the restart policy.
			if a.waitAfterFailure(c, in) {
				continue
			}
			a.start = append(a.start, startAction{container: c, attempt: latest.Attempt + 1, last: latest.Exit, replaces: latest})
		case restarts(pod, c, false, latest.Exit):
			a.restartAfterBackoff(c, latest, false, in)
		}
	}
}

// restartAfterBackoff restarts an exited instance now, or, while it is in
// crash-loop back-off, records when it will be.
func (a *podActions) restartAfterBackoff(c *v1.Container, latest *runtime.Container, init bool, in planInput) {
	delay := in.backoff.delay(latest)
	at := latest.Exit.FinishedAt.Add(delay)
	if in.now.Before(at) {
		a.backingOff[c.Name] = at
		a.wakeAt(at)
		return
	}
	if a.waitAfterFailure(c, in) {
		return
	}
	a.start = append(a.start, startAction{container: c, init: init, attempt: latest.Attempt + 1, backoff: delay, last: latest.Exit, replaces: latest})
}

// waitAfterFailure reports whether the last start of c failed and its
// retry is not due yet, and if so wakes the worker when it is.
func (a *podActions) waitAfterFailure(c *v1.Container, in planInput) bool {
	retry, ok := in.failing[c.Name]
	if !ok || !in.now.Before(retry) {
		return false
	}
	a.wakeAt(retry)
	return true
}

// removeOlder removes every instance but the newest one, tries of the same
// restart count included (runtime.PodState.Latest orders them); a running
// one is killed first. Their logs stay for the previous-instance log.
func (a *podActions) removeOlder(st *runtime.PodState, sandboxID string, latest *runtime.Container) {
	if latest == nil {
		return
	}
	for _, c := range st.Containers {
		if c.SandboxID == sandboxID && c.Name == latest.Name && c != latest {
			a.dispose(c, "a newer instance exists")
		}
	}
}

// planOrphans removes containers of the sandbox that the spec no longer has.
func (a *podActions) planOrphans(pod *v1.Pod, st *runtime.PodState, sb *runtime.Sandbox) {
	names := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		names[c.Name] = true
	}
	for _, c := range pod.Spec.Containers {
		names[c.Name] = true
	}
	for _, c := range st.Containers {
		if c.SandboxID == sb.ID && !names[c.Name] {
			a.dispose(c, fmt.Sprintf("container %q was removed from the pod", c.Name))
		}
	}
}
