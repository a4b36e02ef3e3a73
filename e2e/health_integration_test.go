//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/internal/testenv"
)

// container returns a pod's container status by name.
func container(p v1.Pod, name string) v1.ContainerStatus {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			return cs
		}
	}
	return v1.ContainerStatus{}
}

// podStatus reads a pod's status with its probes; empty until podsup
// answers.
func (e *env) podStatus(name string) api.PodStatus {
	var st api.PodStatus
	resp, err := http.Get("http://" + e.readOnly + "/pods/default/" + name + "-node1/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// waitPod waits until cond holds for the named pod.
func (e *env) waitPod(name string, timeout time.Duration, what string, cond func(v1.Pod) bool) v1.Pod {
	e.t.Helper()
	var last v1.Pod
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pods, _ := e.pods()
		for _, p := range pods {
			if p.Name == name+"-node1" {
				last = p
				if cond(p) {
					return p
				}
			}
		}
	}
	e.t.Fatalf("pod %s: not %s within %s; status %+v", name, what, timeout, last.Status)
	return v1.Pod{}
}

func podManifest(name, body string) string { return podManifestGrace(name, 1, body) }

func podManifestGrace(name string, grace int, body string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  terminationGracePeriodSeconds: %d\n%s", name, grace, body)
}

// TestLivenessRestartsDeadContainer: the liveness endpoint stops answering
// 4 s after start; with period 1 and failureThreshold 3 the container is
// restarted within about 3 s more, and its restart count grows.
func TestLivenessRestartsDeadContainer(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	e.write("live.yaml", podManifest("live", `  containers:
  - name: web
    image: podsup.test/busybox:1
    command: [sh, -c, 'mkdir -p /tmp/www && echo ok > /tmp/www/healthz && httpd -p 8080 -h /tmp/www && sleep 4 && rm /tmp/www/healthz && sleep 1000']
    ports: [{name: http, containerPort: 8080}]
    livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1, failureThreshold: 3}
`))
	e.start(n.args()...)
	p := e.waitPod("live", 60*time.Second, "restarted twice", func(p v1.Pod) bool { return container(p, "web").RestartCount >= 2 })
	last := container(p, "web").LastTerminationState.Terminated
	if last == nil {
		t.Fatal("no last state")
	}
	lived := last.FinishedAt.Sub(last.StartedAt.Time)
	t.Logf("the instance lived %s: 4 s healthy, then about 3 failed probes", lived)
	if lived < 5*time.Second || lived > 10*time.Second {
		t.Errorf("killed %s after start, want within 4 s + period x failureThreshold (3 s) + a margin", lived)
	}
}

// TestReadinessFlips: a readiness probe makes the container, and the pod,
// Ready and not Ready again.
func TestReadinessFlips(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	e.write("ready.yaml", podManifest("ready", `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sh, -c, 'sleep 2; touch /tmp/ready; sleep 4; rm /tmp/ready; sleep 1000']
    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1}
`))
	e.start(n.args()...)
	e.waitPod("ready", 30*time.Second, "running, not ready", func(p v1.Pod) bool {
		return container(p, "app").State.Running != nil && !container(p, "app").Ready
	})
	ready := e.waitPod("ready", 30*time.Second, "ready", func(p v1.Pod) bool { return container(p, "app").Ready })
	if !podReady(ready) {
		t.Error("container ready but the pod's Ready condition is not")
	}
	unready := e.waitPod("ready", 30*time.Second, "not ready again", func(p v1.Pod) bool { return !container(p, "app").Ready })
	if podReady(unready) || container(unready, "app").RestartCount != 0 {
		t.Errorf("after readiness failed: pod ready %v, restarts %d", podReady(unready), container(unready, "app").RestartCount)
	}
	st := e.podStatus("ready")
	found := false
	for _, pr := range st.Probes {
		if pr.Probe == "Readiness" && pr.Result == "failure" && strings.Contains(pr.Output, "No such file") {
			found = true
		}
	}
	if !found {
		t.Errorf("the status path does not show the failed readiness probe's output: %+v", st.Probes)
	}
}

func podReady(p v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// TestStartupProbeProtectsSlowStarter: a container that becomes healthy
// only after 5 s is not killed by its strict liveness probe, because its
// startup probe holds the liveness probe back until it succeeds.
func TestStartupProbeProtectsSlowStarter(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	e.write("slow.yaml", podManifest("slow", `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sh, -c, 'sleep 5; touch /tmp/started; sleep 1000']
    startupProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 30}
    livenessProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 1}
`))
	e.start(n.args()...)
	p := e.waitPod("slow", 30*time.Second, "started", func(p v1.Pod) bool {
		s := container(p, "app").Started
		return s != nil && *s
	})
	time.Sleep(3 * time.Second)
	p = e.pod("slow")
	if c := container(p, "app"); c.RestartCount != 0 || c.State.Running == nil {
		t.Errorf("the slow starter was restarted: %+v", c)
	}
}

// TestExecProbeTimeout: an exec probe that hangs is cut at timeoutSeconds,
// and its process does not linger.
func TestExecProbeTimeout(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	e.write("hang.yaml", podManifest("hang", `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sleep, "1000"]
    readinessProbe: {exec: {command: [sh, -c, "sleep 77"]}, periodSeconds: 3, timeoutSeconds: 1}
`))
	e.start(n.args()...)
	var out string
	waitFor(t, 30*time.Second, "the probe timed out", func() bool {
		for _, pr := range e.podStatus("hang").Probes {
			if pr.Probe == "Readiness" && pr.Result == "failure" {
				out = pr.Output
				return true
			}
		}
		return false
	})
	if !strings.Contains(out, "timed out after 1s") {
		t.Errorf("probe output %q", out)
	}
	time.Sleep(500 * time.Millisecond)
	procs, _ := exec.Command("pgrep", "-f", "sleep 77").Output()
	if n := len(strings.Fields(string(procs))); n > 1 {
		t.Errorf("%d timed-out probe processes still running", n)
	}
}

// TestNetworkProbes: tcpSocket and httpGet probes reach a pod by its IP and
// a hostNetwork pod on the host; a gRPC probe checks a real gRPC health
// server and follows its status.
func TestNetworkProbes(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	testenv.ImportGRPCHealth(t, e.ctx, e.client)
	hostPort := 20000 + rand.IntN(20000)
	e.write("pods.yaml", podManifest("podnet", `  containers:
  - name: web
    image: podsup.test/busybox:1
    command: [sh, -c, 'mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
`)+"---\n"+podManifest("hostnet", fmt.Sprintf(`  hostNetwork: true
  containers:
  - name: web
    image: podsup.test/busybox:1
    command: [sh, -c, 'mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p %d -h /tmp/www']
    ports: [{name: http, containerPort: %d}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
`, hostPort, hostPort))+"---\n"+podManifest("grpc", `  containers:
  - name: srv
    image: podsup.test/grpchealth:1
    command: [sh, -c, 'touch /tmp/serving; (sleep 6; rm /tmp/serving) & exec /grpchealth -port 9090']
    readinessProbe: {grpc: {port: 9090, service: app}, periodSeconds: 1}
`))
	e.start(n.args()...)
	for _, name := range []string{"podnet", "hostnet"} {
		e.waitPod(name, 30*time.Second, "ready", func(p v1.Pod) bool { return container(p, "web").Ready })
	}
	e.waitPod("grpc", 30*time.Second, "ready", func(p v1.Pod) bool { return container(p, "srv").Ready })
	e.waitPod("grpc", 30*time.Second, "not ready once NOT_SERVING", func(p v1.Pod) bool { return !container(p, "srv").Ready })
	for _, name := range []string{"podnet", "hostnet"} {
		if c := container(e.pod(name), "web"); c.RestartCount != 0 {
			t.Errorf("%s restarted %d times", name, c.RestartCount)
		}
	}
}

// TestLifecycleHooks: a failing postStart hook gets the container killed
// and restarted; a preStop hook runs before the stop signal.
func TestLifecycleHooks(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	e.write("poststart.yaml", podManifest("poststart", `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sleep, "1000"]
    lifecycle: {postStart: {exec: {command: [sh, -c, "exit 3"]}}}
`))
	prestop := podManifestGrace("prestop", 5, `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sh, -c, 'trap "echo got-term; exit 0" TERM; echo started; while true; do sleep 0.1; done']
    lifecycle: {preStop: {exec: {command: [sh, -c, "echo prestop-ran > /proc/1/fd/1; sleep 1"]}}}
`)
	e.write("prestop.yaml", prestop)
	e.start(n.args()...)
	e.waitPod("poststart", 60*time.Second, "restarted after its postStart failed", func(p v1.Pod) bool {
		return container(p, "app").RestartCount >= 1
	})
	p := e.waitPod("prestop", 30*time.Second, "running", func(p v1.Pod) bool { return container(p, "app").State.Running != nil })
	// A changed spec stops the container (running its preStop hook) and
	// starts a new one; the stopped instance's log stays.
	e.write("prestop.yaml", prestop+"    env: [{name: EDITED, value: \"1\"}]\n")
	e.waitPod("prestop", 30*time.Second, "restarted", func(p v1.Pod) bool { return container(p, "app").RestartCount == 1 })
	logFile := filepath.Join(e.logs, fmt.Sprintf("default_prestop-node1_%s", p.UID), "app", "0.log")
	var data []byte
	waitFor(t, 30*time.Second, "the container saw its preStop hook and SIGTERM", func() bool {
		data, _ = os.ReadFile(logFile)
		return strings.Contains(string(data), "got-term")
	})
	if i, j := strings.Index(string(data), "prestop-ran"), strings.Index(string(data), "got-term"); i < 0 || i > j {
		t.Errorf("the preStop hook did not run before SIGTERM:\n%s", data)
	}
}
