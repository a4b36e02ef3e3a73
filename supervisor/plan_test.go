package supervisor

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/runtime"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testKey = "default/web-node1"

// testPod builds a defaulted pod with the given app and init containers.
func testPod(policy v1.RestartPolicy, apps []string, inits ...string) *v1.Pod {
	pod := &v1.Pod{}
	pod.Name, pod.Namespace = "web-node1", "default"
	pod.Spec.RestartPolicy = policy
	for _, n := range inits {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, v1.Container{Name: n, Image: "busybox:1", Command: []string{"true"}})
	}
	for _, n := range apps {
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: n, Image: "busybox:1", Command: []string{"sleep", "1d"}})
	}
	manifest.SetDefaults(pod)
	return pod
}

// state describes observed containers compactly.
type state struct {
	pod       *v1.Pod
	sandboxes []*runtime.Sandbox
	cs        []*runtime.Container
}

func observed(pod *v1.Pod) *state { return &state{pod: pod} }

func (s *state) sandbox(attempt int, ready bool) *state {
	s.sandboxes = append([]*runtime.Sandbox{{ID: runtime.SandboxID(testKey, attempt), Attempt: attempt, Ready: ready, Hash: PodHash(s.pod)}}, s.sandboxes...)
	return s
}

func (s *state) staleSandbox(attempt int) *state {
	s.sandboxes = append(s.sandboxes, &runtime.Sandbox{ID: runtime.SandboxID(testKey, attempt), Attempt: attempt, Ready: true, Hash: "old"})
	return s
}

func (s *state) spec(name string) *v1.Container {
	for i := range s.pod.Spec.InitContainers {
		if s.pod.Spec.InitContainers[i].Name == name {
			return &s.pod.Spec.InitContainers[i]
		}
	}
	for i := range s.pod.Spec.Containers {
		if s.pod.Spec.Containers[i].Name == name {
			return &s.pod.Spec.Containers[i]
		}
	}
	return &v1.Container{Name: name}
}

// running adds a running instance in sandbox 0.
func (s *state) running(name string, attempt int) *state {
	return s.add(name, attempt, runtime.StateRunning, nil, 0)
}

// exited adds an exited instance that ran from ago+ran until ago.
func (s *state) exited(name string, attempt int, code int32, ago time.Duration, backoff time.Duration) *state {
	end := t0.Add(-ago)
	return s.add(name, attempt, runtime.StateExited, &runtime.Termination{ExitCode: code, StartedAt: end.Add(-time.Second), FinishedAt: end}, backoff)
}

// retried adds a running instance that a later try of the same restart
// count started (its ID has the retry), created after the others.
func (s *state) retried(name string, attempt, retry int) *state {
	s.running(name, attempt)
	c := s.cs[len(s.cs)-1]
	c.ID = runtime.ContainerID(testKey, name, 0, attempt, retry)
	c.CreatedAt = t0
	return s
}

func (s *state) add(name string, attempt int, st runtime.ContainerState, exit *runtime.Termination, backoff time.Duration) *state {
	sbAttempt := 0
	if len(s.sandboxes) > 0 {
		sbAttempt = s.sandboxes[0].Attempt
	}
	c := &runtime.Container{
		ID: runtime.ContainerID(testKey, name, sbAttempt, attempt, 0), SandboxID: runtime.SandboxID(testKey, sbAttempt),
		Name: name, Hash: ContainerHash(s.spec(name)), Attempt: attempt, State: st, Exit: exit, Backoff: backoff,
		StartedAt: t0.Add(-time.Hour),
	}
	if exit != nil {
		c.StartedAt = exit.StartedAt
	}
	if st == runtime.StateCreated {
		c.StartedAt = time.Time{}
	}
	s.cs = append(s.cs, c)
	return s
}

func (s *state) build() *runtime.PodState {
	st := &runtime.PodState{Key: testKey, Sandboxes: s.sandboxes, Containers: s.cs}
	sort.SliceStable(st.Sandboxes, func(i, j int) bool { return st.Sandboxes[i].Attempt > st.Sandboxes[j].Attempt })
	return st
}

// describe renders a plan in one line for comparison.
func describe(a podActions) string {
	var parts []string
	if a.killPod {
		parts = append(parts, "killPod")
	}
	if a.createSandbox {
		parts = append(parts, fmt.Sprintf("sandbox#%d", a.sandboxAttempt))
	}
	for _, k := range a.kill {
		parts = append(parts, fmt.Sprintf("kill %s#%d", k.container.Name, k.container.Attempt))
	}
	for _, c := range a.remove {
		parts = append(parts, fmt.Sprintf("remove %s#%d", c.Name, c.Attempt))
	}
	for _, sb := range a.staleSandboxes {
		parts = append(parts, fmt.Sprintf("removeSandbox#%d", sb.Attempt))
	}
	for _, st := range a.start {
		p := fmt.Sprintf("start %s#%d", st.container.Name, st.attempt)
		if st.backoff > 0 {
			p += fmt.Sprintf("(after %s)", st.backoff)
		}
		if st.replaces != nil {
			p += fmt.Sprintf(" over #%d", st.replaces.Attempt)
		}
		parts = append(parts, p)
	}
	for _, n := range slices.Sorted(maps.Keys(a.backingOff)) {
		parts = append(parts, fmt.Sprintf("backoff %s until +%s", n, a.backingOff[n].Sub(t0)))
	}
	if a.stopSandbox {
		parts = append(parts, "stopSandbox")
	}
	if !a.requeue.IsZero() && len(a.backingOff) == 0 {
		parts = append(parts, fmt.Sprintf("requeue +%s", a.requeue.Sub(t0)))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func TestComputePodActions(t *testing.T) {
	always := testPod(v1.RestartPolicyAlways, []string{"app", "side"})
	withInit := testPod(v1.RestartPolicyAlways, []string{"app"}, "setup", "migrate")
	never := testPod(v1.RestartPolicyNever, []string{"app"})
	neverInit := testPod(v1.RestartPolicyNever, []string{"app"}, "setup")
	onFailure := testPod(v1.RestartPolicyOnFailure, []string{"app"})
	edited := testPod(v1.RestartPolicyAlways, []string{"app", "side"})
	edited.Spec.Containers[0].Command = []string{"sleep", "2d"}
	hostNet := testPod(v1.RestartPolicyAlways, []string{"app", "side"})
	hostNet.Spec.HostNetwork = true
	probeOnly := testPod(v1.RestartPolicyAlways, []string{"app", "side"})
	probeOnly.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}

	checkPlans(t, []planCase{
		{"new pod", always, observed(always), nil, "sandbox#0, start app#0, start side#0"},
		{"new pod with init containers starts the first only", withInit, observed(withInit), nil, "sandbox#0, start setup#0"},
		{"all running: nothing", always, observed(always).sandbox(0, true).running("app", 0).running("side", 0), nil, "nothing"},
		{"an older try of the running restart count goes", always, observed(always).sandbox(0, true).exited("app", 2, 137, time.Second, 0).retried("app", 2, 1).running("side", 0), nil, "remove app#2"},
		{"a running older try of the same restart count is killed", always, observed(always).sandbox(0, true).running("app", 2).retried("app", 2, 1).running("side", 0), nil, "kill app#2"},
		{"init running: wait", withInit, observed(withInit).sandbox(0, true).running("setup", 0), nil, "nothing"},
		{"first init done: next init", withInit, observed(withInit).sandbox(0, true).exited("setup", 0, 0, time.Second, 0), nil, "start migrate#0"},
		{"inits done: apps", withInit, observed(withInit).sandbox(0, true).exited("setup", 0, 0, time.Minute, 0).exited("migrate", 0, 0, time.Second, 0), nil, "start app#0"},
		{"failed init, Always: restart at once the first time", withInit, observed(withInit).sandbox(0, true).exited("setup", 0, 1, time.Second, 0), nil, "start setup#1 over #0"},
		{"failed init blocks the apps while backing off", withInit, observed(withInit).sandbox(0, true).exited("setup", 1, 1, time.Second, 0), nil, "backoff setup until +9s"},
		{"failed init, Never: pod failed, sandbox stopped", neverInit, observed(neverInit).sandbox(0, true).exited("setup", 0, 1, time.Second, 0), nil, "stopSandbox"},
		{"spec change restarts only that container", edited, observed(edited).sandbox(0, true).running("side", 0).add("app", 0, runtime.StateRunning, nil, 0), func(in *planInput) {
			in.state.Containers[1].Hash = "old-hash"
		}, "kill app#0, start app#1 over #0"},
		{"a probe change restarts nothing", probeOnly, observed(probeOnly).sandbox(0, true).running("app", 0).running("side", 0), func(in *planInput) {
			in.state.Containers[0].Hash = ContainerHash(&always.Spec.Containers[0])
		}, "nothing"},
		{"pod-level change recreates the pod", hostNet, observed(always).sandbox(0, true).running("app", 2).running("side", 0), nil, "killPod, sandbox#1, start app#3, start side#1"},
		{"exit, Always, first time: at once", always, observed(always).sandbox(0, true).exited("app", 0, 1, time.Second, 0).running("side", 0), nil, "start app#1 over #0"},
		{"exit, second time: 10s back-off", always, observed(always).sandbox(0, true).exited("app", 1, 1, 5*time.Second, 0).running("side", 0), nil, "backoff app until +5s"},
		{"back-off over: restart", always, observed(always).sandbox(0, true).exited("app", 1, 1, 11*time.Second, 0).running("side", 0), nil, "start app#2(after 10s) over #1"},
		{"back-off doubles", always, observed(always).sandbox(0, true).exited("app", 4, 1, time.Second, 40*time.Second).running("side", 0), nil, "backoff app until +1m19s"},
		{"back-off is capped at 300s", always, observed(always).sandbox(0, true).exited("app", 9, 1, time.Second, 300*time.Second).running("side", 0), nil, "backoff app until +4m59s"},
		{"a container that ran 10 minutes starts over", always, observed(always).sandbox(0, true).running("side", 0).add("app", 5, runtime.StateExited, &runtime.Termination{ExitCode: 1, StartedAt: t0.Add(-11 * time.Minute), FinishedAt: t0.Add(-time.Second)}, 300*time.Second), nil, "start app#6 over #5"},
		{"OnFailure, exit 0: done, sandbox stopped", onFailure, observed(onFailure).sandbox(0, true).exited("app", 0, 0, time.Second, 0), nil, "stopSandbox"},
		{"OnFailure, exit 1: restart", onFailure, observed(onFailure).sandbox(0, true).exited("app", 0, 1, time.Second, 0), nil, "start app#1 over #0"},
		{"Never, exit 1: failed, sandbox stopped", never, observed(never).sandbox(0, true).exited("app", 0, 1, time.Second, 0), nil, "stopSandbox"},
		{"finished pod with its sandbox stopped: nothing", never, observed(never).sandbox(0, false).exited("app", 0, 0, time.Hour, 0), func(in *planInput) {
			in.stopped = map[string]bool{runtime.SandboxID(testKey, 0): true}
		}, "nothing"},
		{"finished pod after a podsup restart: sandbox stopped once more", never, observed(never).sandbox(0, false).exited("app", 0, 0, time.Hour, 0), nil, "stopSandbox"},
		{"sandbox died, Always: recreate, counts carry over", always, observed(always).sandbox(0, false).running("app", 3).running("side", 1), nil, "killPod, sandbox#1, start app#4, start side#2"},
		{"sandbox died, Never: the pod has failed", never, observed(never).sandbox(0, false).running("app", 0), nil, "stopSandbox"},
		{"removed pod", nil, observed(always).sandbox(0, true).running("app", 0), nil, "killPod"},
		{"removed pod with nothing left", nil, observed(always), nil, "nothing"},
		{"interrupted start: remove and start again", always, observed(always).sandbox(0, true).add("app", 2, runtime.StateCreated, nil, 20*time.Second).running("side", 0), nil, "start app#2(after 20s) over #2"},
		{"older instances are removed", always, observed(always).sandbox(0, true).exited("app", 0, 1, time.Hour, 0).running("app", 1).running("side", 0), nil, "remove app#0"},
		{"container dropped from the spec", always, observed(always).sandbox(0, true).running("app", 0).running("side", 0).running("gone", 0), nil, "kill gone#0"},
		{"leftover sandbox of an interrupted re-creation", always, observed(always).sandbox(1, true).staleSandbox(0).running("app", 0).running("side", 0), nil, "removeSandbox#0"},
		{"liveness failure, Always: restart", always, observed(always).sandbox(0, true).running("app", 0).running("side", 0), func(in *planInput) {
			in.unhealthy = map[string]Condemned{in.state.Containers[0].ID: {Reason: "liveness probe failed"}}
		}, "kill app#0, start app#1 over #0"},
		{"liveness failure, Never: stop only", never, observed(never).sandbox(0, true).running("app", 0), func(in *planInput) {
			in.unhealthy = map[string]Condemned{in.state.Containers[0].ID: {Reason: "liveness probe failed"}}
		}, "kill app#0"},
		{"evicted: stop and remove everything, stop the sandbox", always, observed(always).sandbox(0, true).running("app", 0).exited("side", 0, 1, time.Second, 0), func(in *planInput) {
			in.evicted = true
		}, "kill app#0, remove app#0, remove side#0, stopSandbox"},
		{"evicted and stopped: nothing more", always, observed(always).sandbox(0, false), func(in *planInput) {
			in.evicted, in.stopped = true, map[string]bool{runtime.SandboxID(testKey, 0): true}
		}, "nothing"},
		{"sandbox failed recently: wait", always, observed(always), func(in *planInput) { in.sandboxRetry = t0.Add(8 * time.Second) }, "requeue +8s"},
		{"image pull backing off: wait for it", always, observed(always).sandbox(0, true).running("side", 0), func(in *planInput) {
			in.failing = map[string]time.Time{"app": t0.Add(20 * time.Second)}
		}, "requeue +20s"},
	})
}

// planCase is a pod, what was observed of it, and the plan wanted.
type planCase struct {
	name string
	pod  *v1.Pod
	st   *state
	in   func(*planInput) // adjusts the input, if set
	want string
}

// checkPlans computes each case's plan at t0 and compares it with the one
// wanted; then, if set, runs more checks on the input.
func checkPlans(t *testing.T, cases []planCase, more ...func(*testing.T, planCase, planInput)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := planInput{pod: tc.pod, state: tc.st.build(), now: t0, backoff: DefaultBackoff}
			if tc.in != nil {
				tc.in(&in)
			}
			if got := describe(computePodActions(in)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			for _, m := range more {
				m(t, tc, in)
			}
		})
	}
}

// TestHashesAreStable pins the hashes of kubeadm's etcd manifest: a podsup
// upgrade (a newer k8s.io/api, say) must not change them, or every
// control-plane container would restart on upgrade. If this fails, the
// change restarts every container of every node that upgrades.
func TestHashesAreStable(t *testing.T) {
	objs, err := manifest.Parse("etcd.yaml", mustRead(t, "../manifest/testdata/kubeadm/etcd.yaml"), manifest.Static{NodeName: "node1", Source: manifest.SourceFile})
	if err != nil {
		t.Fatal(err)
	}
	pod := objs.Pods[0]
	if got, want := ContainerHash(&pod.Spec.Containers[0]), "82350ab560038306"; got != want {
		t.Errorf("etcd container hash %s, pinned %s", got, want)
	}
	if got, want := PodHash(pod), "c0d62b978aca5976"; got != want {
		t.Errorf("etcd pod hash %s, pinned %s", got, want)
	}
}
