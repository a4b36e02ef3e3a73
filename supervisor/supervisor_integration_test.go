//go:build integration

package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/runtime"
)

const sleeper = "trap 'kill $! 2>/dev/null; exit 0' TERM; sleep 2147483647 & wait"

func ids(st *runtime.PodState) map[string]string {
	m := map[string]string{}
	for _, c := range st.Containers {
		if c.State == runtime.StateRunning {
			m[c.Name] = fmt.Sprintf("%s pid %d", c.ID, c.Pid)
		}
	}
	if sb := st.Sandbox(); sb != nil {
		m["sandbox"] = fmt.Sprintf("%s pid %d", sb.ID, sb.Pid)
	}
	return m
}

// TestPodLifecycle: a pod starts; editing one container's command restarts
// only that container; editing hostNetwork recreates the pod; removing the
// manifest removes everything the pod had.
func TestPodLifecycle(t *testing.T) {
	h := newHarness(t)
	key := "default/life-node1"
	h.declare(podYAML("life", "", "a: "+sleeper, "b: "+sleeper))
	h.waitPod(key, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && running(p, "a", "b") })
	before := ids(h.state(key))

	h.declare(podYAML("life", "", "a: echo edited; "+sleeper, "b: "+sleeper))
	h.waitPod(key, "replaced a", func(p *v1.Pod) bool {
		return running(p, "a", "b") && !strings.HasPrefix(before["a"], strings.TrimPrefix(containerStatusOf(p, "a").ContainerID, "containerd://")+" ")
	})
	if p := h.sup.Pod(key); containerStatusOf(p, "a").RestartCount != 0 || containerStatusOf(p, "b").RestartCount != 0 {
		t.Errorf("restart counts a %d, b %d after an edit; want 0, as for a new pod", containerStatusOf(p, "a").RestartCount, containerStatusOf(p, "b").RestartCount)
	}
	after := ids(h.state(key))
	if after["b"] != before["b"] || after["sandbox"] != before["sandbox"] {
		t.Errorf("editing a touched b or the sandbox:\nbefore %v\nafter  %v", before, after)
	}
	if after["a"] == before["a"] {
		t.Errorf("editing a's command did not restart it: %v", after)
	}
	p := h.sup.Pod(key)
	if last := containerStatusOf(p, "a").LastTerminationState.Terminated; last == nil || last.ExitCode != 0 {
		t.Errorf("a's last state %+v, want the stopped instance (exit 0 on SIGTERM)", last)
	}

	h.declare(podYAML("life", "  hostNetwork: true\n", "a: echo edited; "+sleeper, "b: "+sleeper))
	h.waitPod(key, "recreated", func(p *v1.Pod) bool {
		return running(p, "a", "b") && p.Status.PodIP == "192.0.2.10"
	})
	recreated := ids(h.state(key))
	for _, n := range []string{"a", "b", "sandbox"} {
		if recreated[n] == after[n] {
			t.Errorf("hostNetwork change left %s as it was: %s", n, recreated[n])
		}
	}
	if !strings.Contains(recreated["sandbox"], "_pause.1") {
		t.Errorf("sandbox %s, want attempt 1", recreated["sandbox"])
	}

	h.declare() // manifest removed
	h.waitGone(key)
	if dirs, _ := h.rt.PodDirs(); len(dirs) != 0 {
		t.Errorf("pod directories left: %v", dirs)
	}
	if logs, _ := filepath.Glob(filepath.Join(h.logDir, "default_life-node1_*")); len(logs) != 0 {
		t.Errorf("log directories left: %v", logs)
	}
	if cg, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/memory", h.ns, "*", "pod*")); len(cg) != 0 {
		t.Errorf("pod cgroups left: %v", cg)
	}
}

// TestAlwaysBacksOffAndDoubles: a container that keeps failing is
// restarted at once, then after back-offs that double, showing
// CrashLoopBackOff while it waits. Each instance records the back-off that
// preceded it and how its predecessor ended; the real containers must never
// start before their back-off is over, and must start after it, woken by
// the back-off's timer alone (the resync is an hour away). The exact
// instants are the clock-driven unit test's (TestWorkerRestartsOnItsClock).
func TestAlwaysBacksOffAndDoubles(t *testing.T) {
	// The back-off grows to 16 s: a status shows CrashLoopBackOff only if
	// the exit is seen before the back-off is over, which on a loaded
	// machine takes seconds.
	backoff := BackoffPolicy{Initial: time.Second, Max: 16 * time.Second, ResetAfter: 10 * time.Minute}
	h := newHarness(t, WithResync(time.Hour), WithBackoff(backoff))
	key := "default/crash-node1"
	h.declare(podYAML("crash", "", "c: exit 1"))
	// Restarts 1..6 wait 0, 1s, 2s, 4s, 8s, 16s after the previous exit.
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
	seen := map[int]*runtime.Container{} // by attempt
	sawBackoff := false
	eventually(t, func() bool {
		if p := h.sup.Pod(key); p != nil {
			if w := containerStatusOf(p, "c").State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
				sawBackoff = true
			}
		}
		for _, c := range h.state(key).Containers {
			if c.Name == "c" && !c.StartedAt.IsZero() && c.Last != nil {
				seen[c.Attempt] = c
			}
		}
		return seen[len(want)] != nil || (sawBackoff && seen[len(want)-1] != nil)
	}, func() string { return fmt.Sprintf("restart %d (seen: %d restarts)", len(want), len(seen)) })
	if !sawBackoff {
		t.Error("status never showed CrashLoopBackOff")
	}
	for i, w := range want {
		c := seen[i+1]
		if c == nil {
			if i+1 < len(want) {
				// Each instance lives at least until its successor's
				// back-off is over, a second or more; the poll missed it.
				t.Errorf("restart %d was never observed", i+1)
			}
			continue
		}
		waited := c.StartedAt.Sub(c.Last.FinishedAt)
		t.Logf("restart %d: %s after the previous exit (back-off %s)", i+1, waited.Round(10*time.Millisecond), c.Backoff)
		if c.Backoff != w {
			t.Errorf("restart %d recorded a back-off of %s, want %s", i+1, c.Backoff, w)
		}
		if waited < w {
			t.Errorf("restart %d came %s after the previous exit, before its back-off of %s was over", i+1, waited, w)
		}
	}
}

func TestRestartPolicies(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name, policy, cmd string
		phase             v1.PodPhase
		reason            string
		code              int32
	}{
		{"onfailure-exit0", "OnFailure", "echo done", v1.PodSucceeded, "Completed", 0},
		{"never-exit3", "Never", "exit 3", v1.PodFailed, "Error", 3},
	}
	for _, tc := range cases {
		h.declare(podYAML(tc.name, "  restartPolicy: "+tc.policy+"\n", "c: "+tc.cmd))
		key := "default/" + tc.name + "-node1"
		p := h.waitPod(key, string(tc.phase), func(p *v1.Pod) bool { return p.Status.Phase == tc.phase })
		term := containerStatusOf(p, "c").State.Terminated
		if term == nil || term.Reason != tc.reason || term.ExitCode != tc.code {
			t.Errorf("%s: terminated %+v, want %s (%d)", tc.name, term, tc.reason, tc.code)
		}
		h.syncAgain(key) // would a restart come?
		p = h.sup.Pod(key)
		if cs := containerStatusOf(p, "c"); cs.RestartCount != 0 || p.Status.Phase != tc.phase {
			t.Errorf("%s: restarted anyway: %s", tc.name, summarize(p))
		}
		if sb := h.state(key).Sandbox(); sb == nil || sb.Ready {
			t.Errorf("%s: the finished pod's sandbox still runs", tc.name)
		}
		h.declare()
		h.waitGone(key)
	}
}

const initPod = `apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: one, image: podsup.test/busybox:1, command: [sh, -c, "echo -n 1 >> /dev/shm/order"]}
  - {name: two, image: podsup.test/busybox:1, command: [sh, -c, "%s"]}
  containers:
  - {name: app, image: podsup.test/busybox:1, command: [sh, -c, "cat /dev/shm/order; echo; sleep 1000"]}
`

func TestInitContainers(t *testing.T) {
	h := newHarness(t)
	h.declare(fmt.Sprintf(initPod, "inits", "echo -n 2 >> /dev/shm/order"), fmt.Sprintf(initPod, "badinit", "exit 1"))
	p := h.waitPod("default/inits-node1", "running", func(p *v1.Pod) bool { return running(p, "app") })
	for _, c := range p.Spec.InitContainers {
		if term := containerStatusOf(p, c.Name).State.Terminated; term == nil || term.ExitCode != 0 {
			t.Errorf("init container %s: %+v", c.Name, term)
		}
	}
	logFile := filepath.Join(h.logDir, fmt.Sprintf("default_inits-node1_%s", p.UID), "app", "0.log")
	waitFile(t, logFile, " F 12\n")

	bad := h.waitPod("default/badinit-node1", "crash-looping its init", func(p *v1.Pod) bool {
		return containerStatusOf(p, "two").RestartCount >= 2
	})
	if bad.Status.Phase != v1.PodPending || containerStatusOf(bad, "app").State.Waiting == nil {
		t.Errorf("a failing init container must hold back the app: %s", summarize(bad))
	}
	for _, c := range h.state("default/badinit-node1").Containers {
		if c.Name == "app" {
			t.Errorf("the app container was created while init failed: %s", c.ID)
		}
	}
}

func waitFile(t *testing.T, path, want string) string {
	t.Helper()
	var data []byte
	eventually(t, func() bool {
		data, _ = os.ReadFile(path)
		return strings.Contains(string(data), want)
	}, func() string { return fmt.Sprintf("%s to hold %q; it has %q", path, want, data) })
	return string(data)
}

// TestGracePeriod: a process that ignores SIGTERM is SIGKILLed once its
// grace period is over, not before; one that obeys SIGTERM stops without
// waiting for its grace period. The instant of the SIGKILL is the subject
// of the runtime's clock-driven TestStopContainerGracePeriod.
func TestGracePeriod(t *testing.T) {
	h := newHarness(t)
	// The polite pod's grace period is far longer than the test waits: if
	// it is gone, SIGTERM stopped it.
	polite := strings.Replace(podYAML("polite", "", "c: "+sleeper), "terminationGracePeriodSeconds: 2", "terminationGracePeriodSeconds: 3600", 1)
	h.declare(podYAML("stubborn", "", "c: trap '' TERM; echo ready; while true; do sleep 0.1; done"), polite)
	for _, key := range []string{"default/stubborn-node1", "default/polite-node1"} {
		h.waitPod(key, "running", func(p *v1.Pod) bool { return running(p, "c") })
	}
	start := time.Now()
	h.declare(polite)
	h.waitGone("default/stubborn-node1") // never, without the SIGKILL
	took := time.Since(start)
	t.Logf("stubborn pod removed in %s (grace 2s)", took.Round(10*time.Millisecond))
	if took < 2*time.Second {
		t.Errorf("stubborn pod removed after %s, before its 2s grace period was over", took)
	}
	start = time.Now()
	h.declare()
	h.waitGone("default/polite-node1")
	t.Logf("polite pod removed in %s (grace 1h)", time.Since(start).Round(10*time.Millisecond))
}

var criLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) [PF] .*$`)

// TestLogs: output is in the CRI format at the documented path, rotates,
// the previous instance's log stays, and the last line of each instance is
// there once its exit is reported. stdout and stderr are copied
// concurrently, so their order in the log is not the processes': the
// instance that fills several log files ends on stdout, whose own order is
// kept, and the stderr line comes from the instance whose log never
// rotates, so no interleaving can push it out.
func TestLogs(t *testing.T) {
	h := newHarness(t)
	h.declare(podYAML("chatty", "  restartPolicy: OnFailure\n",
		`c: if [ -e /dev/shm/again ]; then echo oops >&2; echo "instance 1 ends"; exit 0; fi; touch /dev/shm/again; `+
			`for i in $(seq 1 200); do echo "line $i of the chatty container, padded to about a hundred bytes ........................"; done; `+
			`echo "instance 0 ends"; exit 1`))
	key := "default/chatty-node1"
	p := h.waitPod(key, "succeeded", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
	dir := filepath.Join(h.logDir, "default_chatty-node1_"+string(p.UID), "c")
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	t.Logf("log files: %v", files)
	for n, wants := range [][]string{{" stdout F instance 0 ends"}, {" stderr F oops", " stdout F instance 1 ends"}} {
		instance, _ := filepath.Glob(filepath.Join(dir, strconv.Itoa(n)+".log*"))
		var data []byte
		for _, f := range instance {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatalf("instance %d: %v", n, err)
			}
			data = append(data, b...)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		for _, l := range lines {
			if !criLine.MatchString(l) {
				t.Fatalf("not a CRI log line: %q", l)
			}
		}
		for _, want := range wants {
			if !strings.Contains(string(data), want) {
				t.Errorf("instance %d: %q missing; log ends %q", n, want, data[max(0, len(data)-300):])
			}
		}
	}
	rotated, _ := filepath.Glob(filepath.Join(dir, "0.log.*"))
	if len(rotated) == 0 || len(rotated) > 2 {
		t.Errorf("instance 0 has %d rotated files, want 1 or 2 with a 4 KiB limit and 3 files", len(rotated))
	}
}

func TestOOMKilled(t *testing.T) {
	h := newHarness(t)
	h.declare(podYAML("hog", "  restartPolicy: Never\n", `c: x=$(head -c 100000000 /dev/zero | tr '\0' a); echo survived`) +
		"    resources: {limits: {memory: 32Mi}}\n")
	p := h.waitPod("default/hog-node1", "failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if term := containerStatusOf(p, "c").State.Terminated; term == nil || term.Reason != "OOMKilled" {
		t.Errorf("terminated %+v, want OOMKilled", term)
	}
}

// TestSecurityAndResources checks what the processes see.
func TestSecurityAndResources(t *testing.T) {
	h := newHarness(t)
	h.declare(`apiVersion: v1
kind: Pod
metadata: {name: sec}
spec:
  securityContext: {runAsUser: 65534, runAsGroup: 65534, supplementalGroups: [4242]}
  containers:
  - name: c
    image: podsup.test/busybox:1
    command: [sh, -c, "id; grep CapEff /proc/self/status; touch /x 2>&1 || echo readonly; sleep 1000"]
    securityContext: {readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}, allowPrivilegeEscalation: false}
    resources: {requests: {cpu: 250m, memory: 32Mi}, limits: {cpu: 500m, memory: 64Mi}}
`, `apiVersion: v1
kind: Pod
metadata: {name: rootimage}
spec:
  containers:
  - {name: c, image: podsup.test/busybox:1, command: [sleep, "1000"], securityContext: {runAsNonRoot: true}}
`)
	p := h.waitPod("default/sec-node1", "running", func(p *v1.Pod) bool { return running(p, "c") })
	out := waitFile(t, filepath.Join(h.logDir, "default_sec-node1_"+string(p.UID), "c", "0.log"), "readonly")
	for _, want := range []string{"uid=65534(nobody) gid=65534(nogroup) groups=", "4242", "CapEff:\t0000000000000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	st := h.state("default/sec-node1")
	c := st.Containers[0]
	cg := filepath.Join("/sys/fs/cgroup", "%s", h.ns, "burstable", "pod"+runtime.PodHash("default/sec-node1"), c.ID, "%s")
	for _, f := range []struct{ ctrl, file, want string }{
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.shares", "256"},
	} {
		data, err := os.ReadFile(fmt.Sprintf(cg, f.ctrl, f.file))
		if err != nil || strings.TrimSpace(string(data)) != f.want {
			t.Errorf("%s: %q (%v), want %s", f.file, data, err, f.want)
		}
	}
	adj, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", c.Pid))
	if n, _ := strconv.Atoi(strings.TrimSpace(string(adj))); n < 3 || n > 999 {
		t.Errorf("oom_score_adj of a Burstable container %d, want within [3, 999]", n)
	}

	root := h.waitPod("default/rootimage-node1", "refused", func(p *v1.Pod) bool {
		w := containerStatusOf(p, "c").State.Waiting
		return w != nil && w.Reason == "CreateContainerConfigError"
	})
	if msg := containerStatusOf(root, "c").State.Waiting.Message; !strings.Contains(msg, "runAsNonRoot and the image will run as root") {
		t.Errorf("message %q", msg)
	}
}

// TestGuaranteedOOMScoreIsClamped: the kubelet gives Guaranteed pods -997;
// where the host refuses negative values (no CAP_SYS_RESOURCE) the pod must
// still run, with the value clamped.
func TestGuaranteedOOMScoreIsClamped(t *testing.T) {
	h := newHarness(t)
	h.declare(podYAML("guaranteed", "", "c: "+sleeper) + "    resources: {limits: {cpu: 100m, memory: 32Mi}}\n")
	h.waitPod("default/guaranteed-node1", "running", func(p *v1.Pod) bool { return running(p, "c") })
	c := h.state("default/guaranteed-node1").Containers[0]
	adj, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", c.Pid))
	got, _ := strconv.Atoi(strings.TrimSpace(string(adj)))
	want := -997
	if !hasCapSysResource() {
		want = 0
	}
	t.Logf("Guaranteed container oom_score_adj: %d (CAP_SYS_RESOURCE: %v)", got, hasCapSysResource())
	if got != want {
		t.Errorf("oom_score_adj %d, want %d", got, want)
	}
}

func hasCapSysResource() bool {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps&(1<<24) != 0
		}
	}
	return false
}

func TestImageErrors(t *testing.T) {
	h := newHarness(t)
	h.declare(strings.Replace(podYAML("never", "", "c: true"), testenv.BusyboxRef, "podsup.test/missing:1", 1)+"    imagePullPolicy: Never\n",
		strings.Replace(podYAML("unreachable", "", "c: true"), testenv.BusyboxRef, "127.0.0.1:1/nothing:1", 1))
	h.waitPod("default/never-node1", "ErrImageNeverPull", func(p *v1.Pod) bool {
		w := containerStatusOf(p, "c").State.Waiting
		return w != nil && w.Reason == "ErrImageNeverPull"
	})
	h.waitPod("default/unreachable-node1", "ErrImagePull", func(p *v1.Pod) bool {
		w := containerStatusOf(p, "c").State.Waiting
		return w != nil && w.Reason == "ErrImagePull" && strings.Contains(w.Message, "127.0.0.1:1")
	})
	h.waitPod("default/unreachable-node1", "ImagePullBackOff", func(p *v1.Pod) bool {
		w := containerStatusOf(p, "c").State.Waiting
		return w != nil && w.Reason == "ImagePullBackOff"
	})
}
