//go:build integration

package lifecycle

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// TestNativeSidecars runs a pod whose first init container is a sidecar
// serving HTTP with a startup probe, the second a regular init container
// that fetches from it (so it can only succeed if the sidecar was started
// first), and an app. The sidecar keeps running beside the app, is
// restarted alone when it dies, and stops after the app when the pod goes.
func TestNativeSidecars(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := t.TempDir()
	e.Write("side.yaml", harness.PodManifestGrace("side", 30, fmt.Sprintf(`  volumes: [{name: out, hostPath: {path: %s}}]
  initContainers:
  - name: web
    image: %[2]s
    restartPolicy: Always
    command: [sh, -c, "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && trap 'echo web >> /out/order; exit 0' TERM; httpd -f -p 8080 -h /tmp/www & wait"]
    volumeMounts: [{name: out, mountPath: /out}]
    startupProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1, failureThreshold: 60}
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
  - name: fetch
    image: %[2]s
    command: [wget, -q, -O, /out/fetched, "http://127.0.0.1:8080/"]
    volumeMounts: [{name: out, mountPath: /out}]
  containers:
  - name: app
    image: %[2]s
    command: [sh, -c, "trap 'echo app >> /out/order; sleep 1; exit 0' TERM; sleep 2147483647 & wait"]
    volumeMounts: [{name: out, mountPath: /out}]
`, out, testenv.BusyboxRef)))
	e.Start()
	pod := e.WaitReady("side")
	web, fetch, app := harness.ContainerStatus(pod, "web"), harness.ContainerStatus(pod, "fetch"), harness.ContainerStatus(pod, "app")
	if web.State.Running == nil || web.Started == nil || !*web.Started || !web.Ready {
		t.Errorf("sidecar status %+v, want running, started and ready", web)
	}
	if fetch.State.Terminated == nil || fetch.State.Terminated.ExitCode != 0 || fetch.RestartCount != 0 {
		t.Errorf("init container status %+v, want completed at the first try (the sidecar served it)", fetch)
	}
	if data, _ := os.ReadFile(filepath.Join(out, "fetched")); strings.TrimSpace(string(data)) != "hello" {
		t.Errorf("fetched %q from the sidecar, want hello", data)
	}

	// The sidecar dies: it alone is restarted, the app keeps running.
	task, ok := e.Tasks()[strings.TrimPrefix(web.ContainerID, "containerd://")]
	if !ok {
		t.Fatalf("no task for the sidecar %s", web.ContainerID)
	}
	if err := syscall.Kill(int(task.PID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.WaitRestarts("side", "web", 1)
	pod = e.WaitReady("side")
	if now := harness.ContainerStatus(pod, "app"); now.ContainerID != app.ContainerID || now.RestartCount != 0 {
		t.Errorf("the app changed when its sidecar restarted: %s (%d restarts), was %s", now.ContainerID, now.RestartCount, app.ContainerID)
	}

	// The pod goes: the app stops first, then the sidecar.
	e.Remove("side.yaml")
	harness.WaitFor(t, "both containers stopped", func() bool {
		data, _ := os.ReadFile(filepath.Join(out, "order"))
		return strings.Count(string(data), "\n") >= 2
	})
	if data, _ := os.ReadFile(filepath.Join(out, "order")); string(data) != "app\nweb\n" {
		t.Errorf("stop order %q, want the app before the sidecar", data)
	}
	e.CheckNoLeaks(map[string]bool{})
}

// TestSidecarJobCompletes: a pod with restartPolicy Never completes when its
// app does, though its sidecar would run for ever; the sidecar is stopped.
func TestSidecarJobCompletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("job.yaml", harness.PodManifest("job", fmt.Sprintf(`  restartPolicy: Never
  initContainers:
  - {name: logger, image: %[1]s, restartPolicy: Always, command: [sh, -c, %[2]q]}
  containers:
  - {name: work, image: %[1]s, command: [sh, -c, "sleep 1; echo done"]}
`, testenv.BusyboxRef, harness.IdleCmd)))
	e.Start()
	pod := e.WaitPod("job", "Succeeded", func(p v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
	if work := harness.ContainerStatus(pod, "work"); work.State.Terminated == nil || work.State.Terminated.ExitCode != 0 {
		t.Errorf("work %+v, want terminated with 0", work)
	}
	pod = e.WaitPod("job", "with its sidecar stopped", func(p v1.Pod) bool {
		return harness.ContainerStatus(p, "logger").State.Terminated != nil
	})
	if pod.Status.Phase != v1.PodSucceeded {
		t.Errorf("phase %s once the sidecar stopped, want Succeeded", pod.Status.Phase)
	}
	harness.WaitFor(t, "no task left", func() bool { return len(e.Tasks()) == 0 })
}

// TestRestartRules: a container of a Never pod restarts on the exit code
// its rule names (42), and not on another (3), after which the pod fails.
func TestRestartRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("rules.yaml", harness.PodManifest("rules", fmt.Sprintf(`  restartPolicy: Never
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: flaky
    image: %s
    command: [sh, -c, "if [ -f /data/ran ]; then exit 3; fi; touch /data/ran; exit 42"]
    volumeMounts: [{name: data, mountPath: /data}]
    restartPolicy: Never
    restartPolicyRules: [{action: Restart, exitCodes: {operator: In, values: [42]}}]
`, testenv.BusyboxRef)))
	e.Start()
	pod := e.WaitPod("rules", "Failed", func(p v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	cs := harness.ContainerStatus(pod, "flaky")
	if cs.RestartCount != 1 || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 3 {
		t.Errorf("flaky %+v, want one restart (after 42) and a last exit of 3", cs)
	}
	if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != 42 {
		t.Errorf("last termination %+v, want exit 42", last)
	}
}

// TestActiveDeadline: a pod that runs past activeDeadlineSeconds is stopped
// and reported Failed with reason DeadlineExceeded, and stays so.
func TestActiveDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("deadline.yaml", harness.PodManifest("deadline", fmt.Sprintf(`  activeDeadlineSeconds: 3
  containers:
  - {name: idle, image: %s, command: [sh, -c, %q]}
`, testenv.BusyboxRef, harness.IdleCmd)))
	e.Start()
	// Whether the container is seen running before the deadline depends
	// on the machine's load; that it is stopped when it passes does not.
	pod := e.WaitPod("deadline", "Failed (DeadlineExceeded)", func(p v1.Pod) bool {
		return p.Status.Phase == v1.PodFailed && p.Status.Reason == "DeadlineExceeded"
	})
	if started := pod.Status.StartTime; started == nil {
		t.Error("no start time")
	}
	harness.WaitFor(t, "its task stopped", func() bool { return len(e.Tasks()) == 0 })
	// The status of the sync that stopped it follows.
	e.WaitPod("deadline", "with its container terminated", func(p v1.Pod) bool {
		return harness.ContainerStatus(p, "idle").State.Terminated != nil && p.Status.Phase == v1.PodFailed
	})
	// Restarting podsup does not revive it.
	e.Stop()
	e.Start()
	pod = e.WaitPod("deadline", "Failed again after a podsup restart", func(p v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if pod.Status.Reason != "DeadlineExceeded" || len(e.Tasks()) != 0 {
		t.Errorf("after a restart: %s (%s), %d tasks", pod.Status.Phase, pod.Status.Reason, len(e.Tasks()))
	}
}

// TestStopSignal: a container's lifecycle.stopSignal, not SIGTERM, is what
// stops it, and its status says so.
func TestStopSignal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	out := t.TempDir()
	e.Write("sig.yaml", harness.PodManifestGrace("sig", 30, fmt.Sprintf(`  volumes: [{name: out, hostPath: {path: %s}}]
  containers:
  - name: main
    image: %s
    command: [sh, -c, "trap '' TERM; trap 'echo USR1 > /out/signal; exit 0' USR1; echo ready > /out/ready; sleep 2147483647 & wait; wait"]
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle: {stopSignal: SIGUSR1}
`, out, testenv.BusyboxRef)))
	e.Start()
	pod := e.WaitReady("sig")
	if sig := harness.ContainerStatus(pod, "main").StopSignal; sig == nil || *sig != "SIGUSR1" {
		t.Errorf("status stopSignal %v, want SIGUSR1", sig)
	}
	harness.WaitFor(t, "the traps set", func() bool { _, err := os.Stat(filepath.Join(out, "ready")); return err == nil })
	e.Remove("sig.yaml")
	harness.WaitFor(t, "the pod gone", func() bool { return len(e.Tasks()) == 0 })
	if data, _ := os.ReadFile(filepath.Join(out, "signal")); strings.TrimSpace(string(data)) != "USR1" {
		t.Errorf("the container got %q, want USR1 (it ignores SIGTERM; a SIGKILL after 30 s would leave nothing)", data)
	}
}
