package supervisor

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// readyProbes is ProbeResults where every container has started, and is
// ready but for the named ones.
type readyProbes struct{ notReady map[string]bool }

func (p readyProbes) Ready(_ *v1.Pod, c *v1.Container, _ string) bool { return !p.notReady[c.Name] }
func (p readyProbes) Started(*v1.Pod, *v1.Container, string) bool     { return true }

func statusOf(pod *v1.Pod, st *state, probes ProbeResults) v1.PodStatus {
	return computeStatus(statusInput{pod: pod, state: st.build(), now: t0, plan: &podActions{}, probes: probes})
}

func condition(s v1.PodStatus, t v1.PodConditionType) v1.ConditionStatus {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func TestStatusWithSidecars(t *testing.T) {
	pod := withSidecars(testPod(v1.RestartPolicyAlways, []string{"app"}, "proxy", "setup"), "proxy")
	job := withSidecars(testPod(v1.RestartPolicyNever, []string{"app"}, "proxy"), "proxy")
	cases := []struct {
		name        string
		pod         *v1.Pod
		st          *state
		probes      ProbeResults
		phase       v1.PodPhase
		initialized v1.ConditionStatus
		ready       v1.ConditionStatus
		sidecar     func(v1.ContainerStatus) bool
	}{
		{"a sidecar starting: pending, not initialized", pod, observed(pod).sandbox(0, true).running("proxy", 0), startedProbes{notStarted: map[string]bool{"proxy": true}},
			v1.PodPending, v1.ConditionFalse, v1.ConditionFalse, func(cs v1.ContainerStatus) bool { return cs.Started != nil && !*cs.Started }},
		{"all running and ready", pod, observed(pod).sandbox(0, true).running("proxy", 0).exited("setup", 0, 0, time.Minute, 0).running("app", 0), readyProbes{},
			v1.PodRunning, v1.ConditionTrue, v1.ConditionTrue, func(cs v1.ContainerStatus) bool { return cs.Ready && *cs.Started && cs.State.Running != nil }},
		{"a sidecar not ready makes the pod not ready", pod, observed(pod).sandbox(0, true).running("proxy", 0).exited("setup", 0, 0, time.Minute, 0).running("app", 0), readyProbes{notReady: map[string]bool{"proxy": true}},
			v1.PodRunning, v1.ConditionTrue, v1.ConditionFalse, func(cs v1.ContainerStatus) bool { return !cs.Ready }},
		{"a sidecar that exited after the apps started: still initialized", pod, observed(pod).sandbox(0, true).exited("proxy", 0, 1, time.Second, 0).exited("setup", 0, 0, time.Minute, 0).running("app", 0), readyProbes{},
			v1.PodRunning, v1.ConditionTrue, v1.ConditionFalse, func(cs v1.ContainerStatus) bool { return cs.State.Terminated != nil }},
		{"a Job-like pod succeeds with its app, its sidecar stopped", job, observed(job).sandbox(0, true).exited("proxy", 0, 143, time.Second, 0).exited("app", 0, 0, time.Second, 0), readyProbes{},
			v1.PodSucceeded, v1.ConditionTrue, v1.ConditionFalse, func(cs v1.ContainerStatus) bool {
				return cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 143
			}},
		{"a Job-like pod whose sidecar still runs is Running until its app ends", job, observed(job).sandbox(0, true).running("proxy", 0).running("app", 0), readyProbes{},
			v1.PodRunning, v1.ConditionTrue, v1.ConditionTrue, func(cs v1.ContainerStatus) bool { return cs.Ready }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := statusOf(tc.pod, tc.st, tc.probes)
			if s.Phase != tc.phase {
				t.Errorf("phase %s, want %s", s.Phase, tc.phase)
			}
			if got := condition(s, v1.PodInitialized); got != tc.initialized {
				t.Errorf("Initialized %s, want %s", got, tc.initialized)
			}
			if got := condition(s, v1.PodReady); got != tc.ready {
				t.Errorf("Ready %s, want %s", got, tc.ready)
			}
			if cs := s.InitContainerStatuses[0]; !tc.sidecar(cs) {
				t.Errorf("unexpected sidecar status %+v", cs)
			}
		})
	}
}

func TestPhaseWithRestartRules(t *testing.T) {
	never := v1.ContainerRestartPolicyNever
	pod := testPod(v1.RestartPolicyAlways, []string{"app"})
	pod.Spec.Containers[0].RestartPolicy = &never
	pod.Spec.Containers[0].RestartPolicyRules = []v1.ContainerRestartRule{{Action: v1.ContainerRestartRuleActionRestart,
		ExitCodes: &v1.ContainerRestartRuleOnExitCodes{Operator: v1.ContainerRestartRuleOnExitCodesOpIn, Values: []int32{42}}}}
	for _, tc := range []struct {
		code int32
		want v1.PodPhase
	}{{42, v1.PodRunning}, {1, v1.PodFailed}, {0, v1.PodSucceeded}} {
		s := statusOf(pod, observed(pod).sandbox(0, true).exited("app", 0, tc.code, time.Second, 0), readyProbes{})
		if s.Phase != tc.want {
			t.Errorf("exit %d: phase %s, want %s", tc.code, s.Phase, tc.want)
		}
	}
}
