package supervisor

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/qos"
	"github.com/podsup/podsup/runtime"
)

// ProbeResults are what the health package knows of a container instance.
// A container without a readiness probe is ready once it runs (and, with a
// startup probe, once that has succeeded).
type ProbeResults interface {
	// Ready reports whether the container passes its readiness probe.
	Ready(pod *v1.Pod, c *v1.Container, id string) bool
	// Started reports whether the container passed its startup probe.
	Started(pod *v1.Pod, c *v1.Container, id string) bool
}

// alwaysReady is the probe results when no prober is configured.
type alwaysReady struct{}

func (alwaysReady) Ready(*v1.Pod, *v1.Container, string) bool   { return true }
func (alwaysReady) Started(*v1.Pod, *v1.Container, string) bool { return true }

// statusInput is what a pod's status is computed from.
type statusInput struct {
	pod      *v1.Pod
	state    *runtime.PodState
	now      time.Time
	plan     *podActions
	failing  map[string]*failure
	sandbox  *failure
	probes   ProbeResults
	hostIP   string
	previous *v1.PodStatus // for condition transition times
	evicted  *eviction
	denied   *denial
}

// computeStatus is the pod's status as the kubelet would report it.
func computeStatus(in statusInput) v1.PodStatus {
	pod, st := in.pod, in.state
	sbID := currentSandboxID(st)
	status := v1.PodStatus{QOSClass: qos.Class(pod), HostIP: in.hostIP}
	if in.hostIP != "" {
		status.HostIPs = []v1.HostIP{{IP: in.hostIP}}
	}
	sb := st.Sandbox()
	if sb != nil {
		start := metav1.NewTime(sb.CreatedAt)
		status.StartTime = &start
		ips := sb.IPs
		if pod.Spec.HostNetwork && in.hostIP != "" {
			ips = []string{in.hostIP}
		}
		for _, ip := range ips {
			status.PodIPs = append(status.PodIPs, v1.PodIP{IP: ip})
		}
		if len(ips) > 0 {
			status.PodIP = ips[0]
		}
	}
	// Once the app containers exist the pod is initialized for good: a
	// sidecar that restarts later does not undo it.
	ran := initialized(pod, st, sbID)
	initPending := false
	allReady := len(pod.Spec.Containers) > 0
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := containerStatus(in, c, sbID, true, initPending)
		status.InitContainerStatuses = append(status.InitContainerStatuses, cs)
		if podspec.IsSidecar(c) {
			// A sidecar's readiness is part of the pod's, as the kubelet
			// counts it; it is initialized once started.
			allReady = allReady && cs.Ready
			initPending = initPending || (!ran && (cs.Started == nil || !*cs.Started))
			continue
		}
		if !ran && (cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0) {
			if !(cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode == 0) {
				initPending = true
			}
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := containerStatus(in, c, sbID, false, initPending)
		status.ContainerStatuses = append(status.ContainerStatuses, cs)
		allReady = allReady && cs.Ready
	}
	status.Phase = phase(pod, initPending, status.InitContainerStatuses, status.ContainerStatuses)
	if sb == nil && in.sandbox != nil && status.Phase == v1.PodPending {
		status.Reason, status.Message = in.sandbox.reason, in.sandbox.message
	}
	if in.plan.deadlineExceeded {
		// As the plan found it, not at this later time: the status never
		// says Failed while the containers still run.
		status.Phase, status.Reason, status.Message = v1.PodFailed, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
	}
	if in.denied != nil {
		status.Phase, status.Reason, status.Message = v1.PodPending, in.denied.reason, in.denied.message
	}
	if in.evicted != nil {
		status.Phase, status.Reason, status.Message = v1.PodFailed, "Evicted", in.evicted.message
		status.PodIP, status.PodIPs = "", nil
	}
	terminal := status.Phase == v1.PodSucceeded || status.Phase == v1.PodFailed
	cond := func(t v1.PodConditionType, ok bool, reason string) {
		c := v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: reason}
		if ok {
			c.Status, c.Reason = v1.ConditionTrue, ""
		}
		c.LastTransitionTime = transitionTime(in.previous, t, c.Status, in.now)
		status.Conditions = append(status.Conditions, c)
	}
	cond(v1.PodReadyToStartContainers, sb != nil && sb.Ready, "")
	cond(v1.PodInitialized, !initPending, "ContainersNotInitialized")
	readyReason := "ContainersNotReady"
	if terminal {
		readyReason = "PodCompleted"
	}
	cond(v1.ContainersReady, allReady && !terminal, readyReason)
	cond(v1.PodReady, allReady && !terminal, readyReason)
	cond(v1.PodScheduled, true, "")
	return status
}

// transitionTime keeps a condition's transition time while its status holds.
func transitionTime(prev *v1.PodStatus, t v1.PodConditionType, s v1.ConditionStatus, now time.Time) metav1.Time {
	if prev != nil {
		for _, c := range prev.Conditions {
			if c.Type == t && c.Status == s {
				return c.LastTransitionTime
			}
		}
	}
	return metav1.NewTime(now)
}

func terminated(t *runtime.Termination) *v1.ContainerStateTerminated {
	return &v1.ContainerStateTerminated{
		ExitCode: t.ExitCode, Reason: t.Reason, Message: t.Message,
		StartedAt: metav1.NewTime(t.StartedAt), FinishedAt: metav1.NewTime(t.FinishedAt),
		ContainerID: "containerd://" + t.ID,
	}
}

// containerStatus is one container's status: its newest instance's state,
// the previous instance's end, its restart count and readiness.
func containerStatus(in statusInput, c *v1.Container, sbID string, init, initPending bool) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.Name, Image: c.Image}
	latest := in.state.Latest(sbID, c.Name)
	if latest == nil {
		if newest := newestInstance(in.state, c.Name); newest != nil && newest.Exit != nil {
			cs.RestartCount = restartCount(newest, newest.Attempt+1, string(in.pod.UID))
			cs.LastTerminationState.Terminated = terminated(newest.Exit)
		}
		reason, msg := "ContainerCreating", ""
		if !init && initPending {
			reason = "PodInitializing"
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: msg}
		if f := in.failing[c.Name]; f != nil {
			cs.State.Waiting = f.waiting(c)
		}
		return cs
	}
	cs.RestartCount = restartCount(latest, latest.Attempt, string(in.pod.UID))
	cs.ContainerID = "containerd://" + latest.ID
	cs.ImageID = latest.ImageRef
	if latest.StopSignal != "" {
		sig := v1.Signal(latest.StopSignal)
		cs.StopSignal = &sig
	}
	if latest.User != nil {
		cs.User = &v1.ContainerUser{Linux: latest.User}
	}
	if latest.Last != nil {
		cs.LastTerminationState.Terminated = terminated(latest.Last)
	}
	switch latest.State {
	case runtime.StateCreated:
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "ContainerCreating"}
	case runtime.StateRunning:
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(latest.StartedAt)}
		started := in.probes.Started(in.pod, c, latest.ID)
		cs.Started = &started
		cs.Ready = (!init || podspec.IsSidecar(c)) && started && in.probes.Ready(in.pod, c, latest.ID)
	default:
		f := false
		cs.Started = &f
		if f := in.failing[c.Name]; f != nil && restarts(in.pod, c, init, latest.Exit) {
			// Its restart failed: the reason, as for a first start.
			cs.LastTerminationState.Terminated = terminated(latest.Exit)
			cs.State.Waiting = f.waiting(c)
		} else if at, ok := in.plan.backingOff[c.Name]; ok {
			cs.LastTerminationState.Terminated = terminated(latest.Exit)
			cs.State.Waiting = &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", at.Sub(latest.Exit.FinishedAt).Round(time.Second), c.Name, in.pod.Name)}
		} else {
			cs.State.Terminated = terminated(latest.Exit)
		}
	}
	return cs
}

// waiting is the state of a container whose last start failed.
func (f *failure) waiting(c *v1.Container) *v1.ContainerStateWaiting {
	if f.reason == "ErrImagePull" && f.shown {
		return &v1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: fmt.Sprintf("Back-off pulling image %q: %s", c.Image, f.message)}
	}
	return &v1.ContainerStateWaiting{Reason: f.reason, Message: f.message}
}

// phase is the kubelet's: Pending until the pod is initialized and every
// app container has run, Failed when an init container failed for good,
// Running while an app container runs or will be restarted (as its restart
// policy and rules say), then Succeeded or Failed by how they ended.
// Sidecars do not decide it.
func phase(pod *v1.Pod, initPending bool, inits, apps []v1.ContainerStatus) v1.PodPhase {
	for i, s := range inits {
		c := &pod.Spec.InitContainers[i]
		if t := s.State.Terminated; t != nil && t.ExitCode != 0 && !podspec.IsSidecar(c) && !restarts(pod, c, true, &runtime.Termination{ExitCode: t.ExitCode}) {
			return v1.PodFailed
		}
	}
	if initPending {
		return v1.PodPending
	}
	running, waiting, stopped, succeeded, restarting := 0, 0, 0, 0, 0
	for i, s := range apps {
		c := &pod.Spec.Containers[i]
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
			if restarts(pod, c, false, &runtime.Termination{ExitCode: s.State.Terminated.ExitCode}) {
				restarting++
			}
		case s.State.Waiting != nil && s.LastTerminationState.Terminated != nil:
			stopped++
			restarting++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0, restarting > 0:
		return v1.PodRunning
	case stopped == len(apps) && len(apps) > 0 && stopped == succeeded:
		return v1.PodSucceeded
	case stopped == len(apps) && len(apps) > 0:
		return v1.PodFailed
	}
	return v1.PodPending
}
