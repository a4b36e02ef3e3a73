package supervisor

import (
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
)

// restarts decides whether an instance of c that ended is started again,
// as the kubelet does since Kubernetes 1.35:
//   - a sidecar (an init container with restartPolicy Always) always is;
//   - else the container's restartPolicyRules, in order: the first whose
//     exit codes match decides (Restart);
//   - else the container's own restartPolicy, when it sets one;
//   - else the pod's: for an init container, Always means OnFailure, since
//     an init container that succeeded is done.
//
// An instance whose end is unknown (exit nil) counts as failed.
func restarts(pod *v1.Pod, c *v1.Container, init bool, exit *runtime.Termination) bool {
	if init && podspec.IsSidecar(c) {
		return true
	}
	if exit != nil {
		for _, rule := range c.RestartPolicyRules {
			if rule.Action == v1.ContainerRestartRuleActionRestart && exitMatches(rule.ExitCodes, exit.ExitCode) {
				return true
			}
		}
	}
	policy := pod.Spec.RestartPolicy
	if c.RestartPolicy != nil {
		policy = v1.RestartPolicy(*c.RestartPolicy)
	} else if init && policy == v1.RestartPolicyAlways {
		policy = v1.RestartPolicyOnFailure
	}
	return shouldRestart(policy, exit)
}

// exitMatches reports whether an exit code meets a rule's condition.
func exitMatches(codes *v1.ContainerRestartRuleOnExitCodes, code int32) bool {
	if codes == nil {
		return false
	}
	in := slices.Contains(codes.Values, code)
	switch codes.Operator {
	case v1.ContainerRestartRuleOnExitCodesOpIn:
		return in
	case v1.ContainerRestartRuleOnExitCodesOpNotIn:
		return !in
	}
	return false
}

// shouldRestart applies a restart policy to an instance that ended.
func shouldRestart(policy v1.RestartPolicy, exit *runtime.Termination) bool {
	switch policy {
	case v1.RestartPolicyAlways:
		return true
	case v1.RestartPolicyOnFailure:
		return exit == nil || exit.ExitCode != 0
	}
	return false
}

// neverRestarts reports whether no app container of the pod is ever
// started again once it ends, whatever its exit code: such a pod has failed
// when its sandbox dies after they ran, as with the kubelet.
func neverRestarts(pod *v1.Pod) bool {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		policy := pod.Spec.RestartPolicy
		if c.RestartPolicy != nil {
			policy = v1.RestartPolicy(*c.RestartPolicy)
		}
		if policy != v1.RestartPolicyNever || len(c.RestartPolicyRules) > 0 {
			return false
		}
	}
	return true
}

// newestInstance is a container's newest instance in any sandbox, or nil.
func newestInstance(st *runtime.PodState, name string) *runtime.Container {
	var newest *runtime.Container
	for _, c := range st.Containers {
		if c.Name == name && (newest == nil || sandboxAttemptOf(c.SandboxID) > sandboxAttemptOf(newest.SandboxID) ||
			(c.SandboxID == newest.SandboxID && c.Attempt > newest.Attempt)) {
			newest = c
		}
	}
	return newest
}

// restartBase is the attempt from which a container's restarts count in
// this version of its pod (podUID). podsup replaces only the containers a
// changed manifest changes, and keeps counting attempts for its back-off
// and names; but it reports restarts as the kubelet does, which starts a
// changed static pod as a new pod, at 0.
func restartBase(st *runtime.PodState, name string, attempt int, podUID string) int {
	if prev := newestInstance(st, name); prev != nil && prev.PodUID == podUID {
		return prev.RestartBase
	}
	return attempt
}

// restartCount is how often an instance's container restarted in this
// version of its pod; 0 for an instance of an older version, still running
// because the change left it alone.
func restartCount(c *runtime.Container, attempt int, podUID string) int32 {
	if c == nil || c.PodUID != podUID {
		return 0
	}
	return int32(max(attempt-c.RestartBase, 0))
}
