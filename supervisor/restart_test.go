package supervisor

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/runtime"
)

// startedProbes is ProbeResults where every container has started but the
// named ones.
type startedProbes struct{ notStarted map[string]bool }

func (p startedProbes) Ready(*v1.Pod, *v1.Container, string) bool { return true }
func (p startedProbes) Started(_ *v1.Pod, c *v1.Container, _ string) bool {
	return !p.notStarted[c.Name]
}

// withSidecars makes the named init containers of pod native sidecars.
func withSidecars(pod *v1.Pod, names ...string) *v1.Pod {
	always := v1.ContainerRestartPolicyAlways
	for i := range pod.Spec.InitContainers {
		for _, n := range names {
			if pod.Spec.InitContainers[i].Name == n {
				pod.Spec.InitContainers[i].RestartPolicy = &always
			}
		}
	}
	return pod
}

func TestComputePodActionsSidecars(t *testing.T) {
	// proxy is a sidecar, setup a regular init container after it.
	pod := withSidecars(testPod(v1.RestartPolicyAlways, []string{"app"}, "proxy", "setup"), "proxy")
	job := withSidecars(testPod(v1.RestartPolicyNever, []string{"app"}, "proxy", "log"), "proxy", "log")
	onFailureJob := withSidecars(testPod(v1.RestartPolicyOnFailure, []string{"app"}, "proxy"), "proxy")

	checkPlans(t, []planCase{
		{"new pod starts the sidecar first, and looks again at once", pod, observed(pod), nil, "sandbox#0, start proxy#0, requeue +0s"},
		{"the second sidecar starts once the first has", job, observed(job).sandbox(0, true).running("proxy", 0), nil, "start log#0, requeue +0s"},
		{"a started sidecar lets the next init container start", pod, observed(pod).sandbox(0, true).running("proxy", 0), nil, "start setup#0"},
		{"a sidecar waits for its startup probe", pod, observed(pod).sandbox(0, true).running("proxy", 0), func(in *planInput) {
			in.probes = startedProbes{notStarted: map[string]bool{"proxy": true}}
		}, "nothing"},
		{"inits done: apps start beside the sidecar", pod, observed(pod).sandbox(0, true).running("proxy", 0).exited("setup", 0, 0, time.Second, 0), nil, "start app#0"},
		{"a sidecar that exits is restarted, whatever its exit code", pod, observed(pod).sandbox(0, true).exited("proxy", 0, 0, time.Second, 0).exited("setup", 0, 0, time.Second, 0).running("app", 0), nil, "start proxy#1 over #0"},
		{"a sidecar crash-looping backs off while the apps run", pod, observed(pod).sandbox(0, true).exited("proxy", 2, 1, time.Second, 10*time.Second).exited("setup", 0, 0, time.Minute, 0).running("app", 0), nil, "backoff proxy until +19s"},
		{"a sidecar's liveness failure restarts it", pod, observed(pod).sandbox(0, true).running("proxy", 0).exited("setup", 0, 0, time.Second, 0).running("app", 0), func(in *planInput) {
			in.unhealthy = map[string]Condemned{in.state.Containers[0].ID: {Reason: "liveness probe failed"}}
		}, "kill proxy#0, start proxy#1 over #0"},
		{"once the apps exist, a regular init container is not run again", pod, observed(pod).sandbox(0, true).running("proxy", 0).running("app", 0), nil, "nothing"},
		{"Never pod: sidecars restart while the app runs", job, observed(job).sandbox(0, true).exited("proxy", 0, 1, time.Second, 0).running("log", 0).running("app", 0), nil, "start proxy#1 over #0"},
		{"Never pod: the app done stops the sidecars", job, observed(job).sandbox(0, true).running("proxy", 0).running("log", 0).exited("app", 0, 0, time.Second, 0), nil, "kill proxy#0, kill log#0"},
		{"Never pod: app and sidecars done, the pod is finished", job, observed(job).sandbox(0, true).exited("proxy", 0, 143, time.Second, 0).exited("log", 0, 143, time.Second, 0).exited("app", 0, 0, time.Second, 0), nil, "stopSandbox"},
		{"OnFailure pod: a failed app restarts, the sidecar stays", onFailureJob, observed(onFailureJob).sandbox(0, true).running("proxy", 0).exited("app", 0, 1, time.Second, 0), nil, "start app#1 over #0"},
	})
}

func TestRestartRules(t *testing.T) {
	never, onFailure := v1.ContainerRestartPolicyNever, v1.ContainerRestartPolicyOnFailure
	retryable := []v1.ContainerRestartRule{{Action: v1.ContainerRestartRuleActionRestart,
		ExitCodes: &v1.ContainerRestartRuleOnExitCodes{Operator: v1.ContainerRestartRuleOnExitCodesOpIn, Values: []int32{42}}}}
	notFatal := []v1.ContainerRestartRule{{Action: v1.ContainerRestartRuleActionRestart,
		ExitCodes: &v1.ContainerRestartRuleOnExitCodes{Operator: v1.ContainerRestartRuleOnExitCodesOpNotIn, Values: []int32{0, 3}}}}
	cases := []struct {
		name      string
		podPolicy v1.RestartPolicy
		policy    *v1.ContainerRestartPolicy
		rules     []v1.ContainerRestartRule
		init      bool
		code      int32
		want      bool
	}{
		{"pod Always", v1.RestartPolicyAlways, nil, nil, false, 0, true},
		{"pod OnFailure, exit 0", v1.RestartPolicyOnFailure, nil, nil, false, 0, false},
		{"pod Never, exit 1", v1.RestartPolicyNever, nil, nil, false, 1, false},
		{"container Never overrides pod Always", v1.RestartPolicyAlways, &never, nil, false, 1, false},
		{"container OnFailure overrides pod Never", v1.RestartPolicyNever, &onFailure, nil, false, 1, true},
		{"rule In matches", v1.RestartPolicyAlways, &never, retryable, false, 42, true},
		{"rule In does not match: the container's policy", v1.RestartPolicyAlways, &never, retryable, false, 1, false},
		{"rule NotIn matches", v1.RestartPolicyNever, &never, notFatal, false, 1, true},
		{"rule NotIn does not match", v1.RestartPolicyNever, &never, notFatal, false, 3, false},
		{"init container, pod Always: only on failure", v1.RestartPolicyAlways, nil, nil, true, 0, false},
		{"init container, pod Always, failed", v1.RestartPolicyAlways, nil, nil, true, 1, true},
		{"init container with a rule, pod Never", v1.RestartPolicyNever, &never, retryable, true, 42, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(tc.podPolicy, []string{"app"})
			c := &v1.Container{Name: "c", RestartPolicy: tc.policy, RestartPolicyRules: tc.rules}
			if got := restarts(pod, c, tc.init, &runtime.Termination{ExitCode: tc.code}); got != tc.want {
				t.Errorf("restarts = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("a pod whose containers never restart finishes", func(t *testing.T) {
		pod := testPod(v1.RestartPolicyAlways, []string{"app"})
		pod.Spec.Containers[0].RestartPolicy = &never
		st := observed(pod).sandbox(0, true).exited("app", 0, 1, time.Second, 0)
		if got := describe(computePodActions(planInput{pod: pod, state: st.build(), now: t0, backoff: DefaultBackoff})); got != "stopSandbox" {
			t.Errorf("got %s, want stopSandbox", got)
		}
	})
}

func TestActiveDeadline(t *testing.T) {
	deadline := int64(30)
	pod := testPod(v1.RestartPolicyAlways, []string{"app"})
	pod.Spec.ActiveDeadlineSeconds = &deadline
	edited := pod.DeepCopy()
	edited.Spec.Containers[0].Command = []string{"sleep", "2d"}
	createdAgo := func(ago time.Duration) func(*planInput) {
		return func(in *planInput) { in.state.Sandboxes[0].CreatedAt = t0.Add(-ago) }
	}
	// A pod past its deadline is reported Failed, with the kubelet's reason.
	checkPlans(t, []planCase{
		{"before the deadline: look again when it passes", pod, observed(pod).sandbox(0, true).running("app", 0), createdAgo(10 * time.Second), "requeue +20s"},
		{"deadline passed: everything stops", pod, observed(pod).sandbox(0, true).running("app", 0), createdAgo(30 * time.Second), "kill app#0, stopSandbox"},
		{"deadline passed and stopped: nothing more", pod, observed(pod).sandbox(0, false).exited("app", 0, 137, time.Second, 0), func(in *planInput) {
			createdAgo(time.Hour)(in)
			in.stopped = map[string]bool{in.state.Sandboxes[0].ID: true}
		}, "nothing"},
		{"a changed spec is a new pod with a deadline of its own", edited, observed(pod).sandbox(0, false).exited("app", 0, 137, time.Second, 0), createdAgo(time.Hour), "killPod, sandbox#1, start app#1"},
	}, func(t *testing.T, tc planCase, in planInput) {
		plan := computePodActions(in)
		s := computeStatus(statusInput{pod: tc.pod, state: in.state, now: t0, plan: &plan, probes: readyProbes{}})
		wantFailed := strings.HasPrefix(tc.name, "deadline passed")
		if got := s.Phase == v1.PodFailed && s.Reason == "DeadlineExceeded"; got != wantFailed {
			t.Errorf("status %s (%s); Failed with DeadlineExceeded wanted: %v", s.Phase, s.Reason, wantFailed)
		}
	})
}

// TestRestartCountOfAChangedPod: podsup replaces only the edited container,
// but counts restarts as the kubelet does for a changed static pod, a new
// pod: from 0, while crashes within one version still count.
func TestRestartCountOfAChangedPod(t *testing.T) {
	sb := "h_pause.0"
	inst := func(attempt, base int, uid string) *runtime.Container {
		return &runtime.Container{ID: "c", SandboxID: sb, Name: "app", Attempt: attempt, RestartBase: base, PodUID: uid}
	}
	tests := []struct {
		name      string
		prev      *runtime.Container // the newest instance so far
		attempt   int                // of the next instance
		wantBase  int
		wantCount int32
	}{
		{"first instance", nil, 0, 0, 0},
		{"a crash in the same version (or a container from before restart bases: base 0)", inst(2, 0, "v2"), 3, 0, 3},
		{"the first start of an edited version", inst(3, 0, "v1"), 4, 4, 0},
		{"a crash after the edit", inst(4, 4, "v2"), 5, 4, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &runtime.PodState{}
			if tc.prev != nil {
				st.Containers = []*runtime.Container{tc.prev}
			}
			base := restartBase(st, "app", tc.attempt, "v2")
			if base != tc.wantBase {
				t.Errorf("restartBase = %d, want %d", base, tc.wantBase)
			}
			if got := restartCount(inst(tc.attempt, base, "v2"), tc.attempt, "v2"); got != tc.wantCount {
				t.Errorf("restartCount = %d, want %d", got, tc.wantCount)
			}
		})
	}
	if got := restartCount(inst(5, 0, "v1"), 5, "v2"); got != 0 {
		t.Errorf("an instance left running from the old version counts %d restarts, want 0", got)
	}
}
