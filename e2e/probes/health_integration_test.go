//go:build integration

package probes

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// TestLivenessRestartsDeadContainer: the liveness endpoint stops answering
// 4 s after start; with period 1 and failureThreshold 3 the container is
// restarted within about 3 s more, and its restart count grows.
func TestLivenessRestartsDeadContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("live.yaml", harness.PodManifest("live", `  containers:
  - name: web
    image: podsup.test/busybox:1
    command: [sh, -c, 'mkdir -p /tmp/www && echo ok > /tmp/www/healthz && httpd -p 8080 -h /tmp/www && sleep 4 && rm /tmp/www/healthz && sleep 1000']
    ports: [{name: http, containerPort: 8080}]
    livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1, failureThreshold: 3}
`))
	e.Start()
	p := e.WaitPod("live", "restarted twice", func(p v1.Pod) bool { return harness.ContainerStatus(p, "web").RestartCount >= 2 })
	last := harness.ContainerStatus(p, "web").LastTerminationState.Terminated
	if last == nil {
		t.Fatal("no last state")
	}
	lived := last.FinishedAt.Sub(last.StartedAt.Time)
	// How soon after the 4 s it was killed depends on how busy the machine
	// is: a figure, not a condition. Killed before it stopped answering, it
	// would have been killed for nothing.
	harness.Record(t, "liveness kill after start (4 s healthy, period 1 s, failureThreshold 3)", "%s", lived)
	if lived < 4*time.Second {
		t.Errorf("killed %s after start, while it still answered (4 s)", lived)
	}
}

// TestReadinessFlips: a readiness probe makes the container, and the pod,
// Ready and not Ready again.
func TestReadinessFlips(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctl := t.TempDir() // the test makes the container ready by a file here
	e.Write("ready.yaml", harness.PodManifest("ready", fmt.Sprintf(`  volumes: [{name: ctl, hostPath: {path: %s}}]
  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sleep, "1000"]
    readinessProbe: {exec: {command: [cat, /ctl/ready]}, periodSeconds: 1}
    volumeMounts: [{name: ctl, mountPath: /ctl}]
`, ctl)))
	e.Start()
	e.WaitPod("ready", "running, not ready", func(p v1.Pod) bool {
		return harness.ContainerStatus(p, "app").State.Running != nil && !harness.ContainerStatus(p, "app").Ready
	})
	if err := os.WriteFile(filepath.Join(ctl, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ready := e.WaitPod("ready", "ready", func(p v1.Pod) bool { return harness.ContainerStatus(p, "app").Ready })
	if !harness.PodReady(ready) {
		t.Error("container ready but the pod's Ready condition is not")
	}
	if err := os.Remove(filepath.Join(ctl, "ready")); err != nil {
		t.Fatal(err)
	}
	unready := e.WaitPod("ready", "not ready again", func(p v1.Pod) bool { return !harness.ContainerStatus(p, "app").Ready })
	if harness.PodReady(unready) || harness.ContainerStatus(unready, "app").RestartCount != 0 {
		t.Errorf("after readiness failed: pod ready %v, restarts %d", harness.PodReady(unready), harness.ContainerStatus(unready, "app").RestartCount)
	}
	st := e.PodStatus("ready")
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

// TestStartupProbeProtectsSlowStarter: a container that becomes healthy
// only after 5 s is not killed by its strict liveness probe, because its
// startup probe holds the liveness probe back until it succeeds.
func TestStartupProbeProtectsSlowStarter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("slow.yaml", harness.PodManifest("slow", `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sh, -c, 'sleep 5; touch /tmp/started; sleep 1000']
    startupProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 30}
    livenessProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 1, timeoutSeconds: 30}
`))
	e.Start()
	p := e.WaitPod("slow", "started", func(p v1.Pod) bool {
		s := harness.ContainerStatus(p, "app").Started
		return s != nil && *s
	})
	time.Sleep(3 * time.Second) // three liveness periods
	p = e.Pod("slow")
	if c := harness.ContainerStatus(p, "app"); c.RestartCount != 0 || c.State.Running == nil {
		t.Errorf("the slow starter was restarted: %+v", c)
	}
}

// TestExecProbeTimeout: an exec probe that hangs is cut at timeoutSeconds,
// and its process does not linger.
func TestExecProbeTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("hang.yaml", harness.PodManifest("hang", `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sleep, "1000"]
    readinessProbe: {exec: {command: [sh, -c, "sleep 77"]}, periodSeconds: 3, timeoutSeconds: 1}
`))
	e.Start()
	var out string
	harness.WaitFor(t, "the probe timed out", func() bool {
		for _, pr := range e.PodStatus("hang").Probes {
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
	// The probe process is killed at its timeout: at most the one of the
	// try in progress runs (the next try comes 3 s later).
	harness.WaitFor(t, "at most one probe process running", func() bool {
		procs, _ := exec.Command("pgrep", "-f", "sleep 77").Output()
		return len(strings.Fields(string(procs))) <= 1
	})
}

// TestNetworkProbes: tcpSocket and httpGet probes reach a pod by its IP and
// a hostNetwork pod on the host; a gRPC probe checks a real gRPC health
// server and follows its status.
func TestNetworkProbes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	testenv.ImportGRPCHealth(t, e.Ctx, e.Client)
	ctl := t.TempDir() // the gRPC server is SERVING while a file is here
	if err := os.WriteFile(filepath.Join(ctl, "serving"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hostPort := testenv.FreePort(t)
	e.Write("pods.yaml", harness.PodManifest("podnet", `  containers:
  - name: web
    image: podsup.test/busybox:1
    command: [sh, -c, 'mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1, timeoutSeconds: 30}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1, timeoutSeconds: 30}
`)+"---\n"+harness.PodManifest("hostnet", fmt.Sprintf(`  hostNetwork: true
  containers:
  - name: web
    image: podsup.test/busybox:1
    command: [sh, -c, 'mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p %d -h /tmp/www']
    ports: [{name: http, containerPort: %d}]
    readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1, timeoutSeconds: 30}
    livenessProbe: {tcpSocket: {port: http}, periodSeconds: 1, timeoutSeconds: 30}
`, hostPort, hostPort))+"---\n"+harness.PodManifest("grpc", fmt.Sprintf(`  volumes: [{name: ctl, hostPath: {path: %s}}]
  containers:
  - name: srv
    image: podsup.test/grpchealth:1
    command: [/grpchealth, -port, "9090", -file, /ctl/serving]
    readinessProbe: {grpc: {port: 9090, service: app}, periodSeconds: 1, timeoutSeconds: 30}
    volumeMounts: [{name: ctl, mountPath: /ctl}]
`, ctl)))
	e.Start()
	for _, name := range []string{"podnet", "hostnet"} {
		e.WaitPod(name, "ready", func(p v1.Pod) bool { return harness.ContainerStatus(p, "web").Ready })
	}
	e.WaitPod("grpc", "ready", func(p v1.Pod) bool { return harness.ContainerStatus(p, "srv").Ready })
	if err := os.Remove(filepath.Join(ctl, "serving")); err != nil {
		t.Fatal(err)
	}
	e.WaitPod("grpc", "not ready once NOT_SERVING", func(p v1.Pod) bool { return !harness.ContainerStatus(p, "srv").Ready })
	for _, name := range []string{"podnet", "hostnet"} {
		if c := harness.ContainerStatus(e.Pod(name), "web"); c.RestartCount != 0 {
			t.Errorf("%s restarted %d times", name, c.RestartCount)
		}
	}
}

// TestLifecycleHooks: a failing postStart hook gets the container killed
// and restarted; a preStop hook runs before the stop signal.
func TestLifecycleHooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("poststart.yaml", harness.PodManifest("poststart", `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sleep, "1000"]
    lifecycle: {postStart: {exec: {command: [sh, -c, "exit 3"]}}}
`))
	// A grace period a busy machine meets: past it, the container would be
	// killed without SIGTERM.
	prestop := harness.PodManifestGrace("prestop", 60, `  containers:
  - name: app
    image: podsup.test/busybox:1
    command: [sh, -c, 'trap "echo got-term; exit 0" TERM; echo started; while true; do sleep 0.1; done']
    lifecycle: {preStop: {exec: {command: [sh, -c, "echo prestop-ran > /proc/1/fd/1; sleep 1"]}}}
`)
	e.Write("prestop.yaml", prestop)
	e.Start()
	e.WaitPod("poststart", "restarted after its postStart failed", func(p v1.Pod) bool {
		return harness.ContainerStatus(p, "app").RestartCount >= 1
	})
	p := e.WaitPod("prestop", "running", func(p v1.Pod) bool { return harness.ContainerStatus(p, "app").State.Running != nil })
	// A changed spec stops the container (running its preStop hook) and
	// starts a new one; the stopped instance's log stays.
	e.Write("prestop.yaml", prestop+"    env: [{name: EDITED, value: \"1\"}]\n")
	if edited := e.WaitReplaced("prestop", "app", harness.ContainerStatus(p, "app").ContainerID); harness.ContainerStatus(edited, "app").RestartCount != 0 {
		t.Errorf("the edited pod's container has %d restarts, want 0: a changed static pod is a new pod", harness.ContainerStatus(edited, "app").RestartCount)
	}
	logFile := filepath.Join(e.Logs, fmt.Sprintf("default_prestop-node1_%s", p.UID), "app", "0.log")
	var data []byte
	harness.WaitFor(t, "the container saw its preStop hook and SIGTERM", func() bool {
		data, _ = os.ReadFile(logFile)
		return strings.Contains(string(data), "got-term")
	})
	if i, j := strings.Index(string(data), "prestop-ran"), strings.Index(string(data), "got-term"); i < 0 || i > j {
		t.Errorf("the preStop hook did not run before SIGTERM:\n%s", data)
	}
}
