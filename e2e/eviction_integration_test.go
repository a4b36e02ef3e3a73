//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
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
	"github.com/podsup/podsup/stats"
)

// fillOnce is a container that writes size MiB into dir once: a marker on
// a hostPath remembers it did, so that after an eviction the pod comes
// back and stays without filling the node again.
func fillOnce(dir string, size int) string {
	return fmt.Sprintf("if [ ! -e /marker/filled ]; then touch /marker/filled; dd if=/dev/zero of=%s/fill bs=1M count=%d; fi; "+
		"trap 'exit 0' TERM; while true; do sleep 0.5; done", dir, size)
}

const idle = "trap 'exit 0' TERM; while true; do sleep 0.5; done"

// pressurePod is a pod of one container running cmd; extra is spec YAML
// (volumes, priorityClassName).
func pressurePod(name, cmd, resources, extra string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 1
%s  containers:
  - name: main
    image: %s
    command: [sh, -c, %q]
%s    volumeMounts: [{name: marker, mountPath: /marker}]
`, name, extra, testenv.BusyboxRef, cmd, resources)
}

// nodeConditions reads the node's conditions from the status page's state.
func (e *env) nodeConditions() map[v1.NodeConditionType]v1.ConditionStatus {
	resp, err := http.Get("http://" + e.readOnly + "/ui/state")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st api.UIState
	if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Node == nil {
		return nil
	}
	out := map[v1.NodeConditionType]v1.ConditionStatus{}
	for _, c := range st.Node.Conditions {
		out[c.Type] = c.Status
	}
	return out
}

// summary reads /stats/summary.
func (e *env) summary() (*stats.Summary, error) {
	resp, err := http.Get("http://" + e.readOnly + "/stats/summary")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s stats.Summary
	return &s, json.NewDecoder(resp.Body).Decode(&s)
}

func isRunning(p v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func evicted(p v1.Pod) bool {
	return p.Status.Phase == v1.PodFailed && p.Status.Reason == "Evicted"
}

func containerIDs(p v1.Pod) string {
	var ids []string
	for _, cs := range p.Status.ContainerStatuses {
		ids = append(ids, cs.ContainerID)
	}
	return strings.Join(ids, ",")
}

// mountTmpfs mounts a tmpfs of size MiB on a new directory, unmounted when
// the test ends (after the harness has stopped podsup).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", size), "podsup-test", dir).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestDiskPressure runs podsup with its root and log directories on a
// 200 MiB filesystem. A pod fills an emptyDir; podsup first removes logs
// no container writes, then evicts the pod, refuses new pods while the
// pressure lasts, and once it has cleared for the transition period runs
// both. A critical pod is never touched.
func TestDiskPressure(t *testing.T) {
	small := mountTmpfs(t, 200)
	e := newEnv(t)
	e.root, e.logs = filepath.Join(small, "root"), filepath.Join(small, "logs")
	for _, dir := range []string{e.root, e.logs} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	marker := t.TempDir()

	// 30 MiB of logs of a pod that no longer exists, written long ago.
	orphan := filepath.Join(e.logs, "default_gone-node1_0123", "main")
	if err := os.MkdirAll(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "0.log"), make([]byte, 30<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Dir(orphan), old, old)

	volumes := fmt.Sprintf("  volumes: [{name: scratch, emptyDir: {}}, {name: marker, hostPath: {path: %s}}]\n", marker)
	mount := "    volumeMounts: [{name: scratch, mountPath: /scratch}, {name: marker, mountPath: /marker}]\n"
	filler := strings.Replace(pressurePod("filler", fillOnce("/scratch", 150), "", volumes), "    volumeMounts: [{name: marker, mountPath: /marker}]\n", mount, 1)
	critical := pressurePod("critical", idle, "", volumes+"  priorityClassName: system-node-critical\n")
	e.write("critical.yaml", critical)
	e.start("--eviction-hard", "nodefs.available<60Mi", "--housekeeping-interval", "1s",
		"--eviction-pressure-transition-period", "10s")
	e.waitPod("critical", 60*time.Second, "running", isRunning)
	criticalIDs := containerIDs(e.pod("critical"))

	start := time.Now()
	e.write("filler.yaml", filler)
	e.waitPod("filler", 90*time.Second, "evicted", evicted)
	took := time.Since(start)
	msg := e.pod("filler").Status.Message
	if !strings.Contains(msg, "ephemeral-storage") || !strings.Contains(msg, "nodefs.available") {
		t.Errorf("eviction message %q: want the resource and the signal", msg)
	}
	if _, err := os.Stat(filepath.Dir(orphan)); err == nil {
		t.Error("the orphaned logs were not reclaimed before the eviction")
	}
	if c := e.nodeConditions(); c[v1.NodeDiskPressure] != v1.ConditionTrue {
		t.Errorf("node conditions during the pressure: %v, want DiskPressure True", c)
	}

	// A new pod waits while the pressure lasts, then runs.
	e.write("late.yaml", pressurePod("late", idle, "", volumes))
	e.waitPod("late", 30*time.Second, "held back", func(p v1.Pod) bool {
		return p.Status.Phase == v1.PodPending && p.Status.Reason == "NodeDiskPressure"
	})

	waitFor(t, 60*time.Second, "DiskPressure cleared", func() bool {
		return e.nodeConditions()[v1.NodeDiskPressure] == v1.ConditionFalse
	})
	cleared := time.Since(start) - took
	e.waitPod("filler", 60*time.Second, "back", isRunning)
	e.waitPod("late", 60*time.Second, "running", isRunning)
	if got := containerIDs(e.pod("critical")); got != criticalIDs || !isRunning(e.pod("critical")) {
		t.Errorf("critical pod containers %s, want %s untouched", got, criticalIDs)
	}
	summary.record(t.Name(), "fill to eviction", "%.1f s", took.Seconds())
	summary.record(t.Name(), "pressure cleared after eviction", "%.1f s (transition period 10 s)", cleared.Seconds())
	summary.record(t.Name(), "whole cycle, fill to readmission", "%.1f s", time.Since(start).Seconds())
}

// TestMemoryPressure sets the memory threshold 1500 MiB below what the
// machine has available (a margin for the other tests running meanwhile),
// and runs a BestEffort pod that takes 2500 MiB of
// memory (a tmpfs volume), a Burstable pod and a critical pod: the
// BestEffort pod is evicted, the others stay.
func TestMemoryPressure(t *testing.T) {
	e := newEnv(t)
	marker := t.TempDir()
	volumes := fmt.Sprintf("  volumes: [{name: mem, emptyDir: {medium: Memory, sizeLimit: 3Gi}}, {name: marker, hostPath: {path: %s}}]\n", marker)
	mount := "    volumeMounts: [{name: mem, mountPath: /mem}, {name: marker, mountPath: /marker}]\n"
	hog := strings.Replace(pressurePod("hog", fillOnce("/mem", 2500), "", volumes), "    volumeMounts: [{name: marker, mountPath: /marker}]\n", mount, 1)
	burstable := pressurePod("burstable", idle, "    resources: {requests: {memory: 10Mi}}\n", volumes)
	critical := pressurePod("critical", idle, "", volumes+"  priorityClassName: system-node-critical\n")
	e.write("burstable.yaml", burstable)
	e.write("critical.yaml", critical)
	e.start("--eviction-hard", "memory.available<1Mi", "--housekeeping-interval", "1s", "--eviction-pressure-transition-period", "5s")
	e.waitPod("burstable", 60*time.Second, "running", isRunning)
	e.waitPod("critical", 60*time.Second, "running", isRunning)

	// The threshold: 1500 MiB below what is available now, as podsup counts it.
	s, err := e.summary()
	if err != nil || s.Node.Memory == nil || s.Node.Memory.AvailableBytes == nil {
		t.Fatalf("summary: %v", err)
	}
	available := *s.Node.Memory.AvailableBytes
	threshold := fmt.Sprintf("memory.available<%dMi", available>>20-1500)
	ids := map[string]string{"burstable": containerIDs(e.pod("burstable")), "critical": containerIDs(e.pod("critical"))}
	e.stop()
	e.start("--eviction-hard", threshold, "--housekeeping-interval", "1s", "--eviction-pressure-transition-period", "5s")
	e.waitPod("burstable", 30*time.Second, "adopted", isRunning)
	e.waitPod("critical", 30*time.Second, "adopted", isRunning)

	start := time.Now()
	e.write("hog.yaml", hog)
	e.waitPod("hog", 90*time.Second, "evicted", evicted)
	took := time.Since(start)
	if msg := e.pod("hog").Status.Message; !strings.Contains(msg, "memory") {
		t.Errorf("eviction message %q: want the resource", msg)
	}
	for name, want := range ids {
		p := e.pod(name)
		if !isRunning(p) || containerIDs(p) != want {
			t.Errorf("%s: %s %q, containers %s: want running, untouched (%s)", name, p.Status.Phase, p.Status.Reason, containerIDs(p), want)
		}
	}
	summary.record(t.Name(), "threshold", "%s (available at start %d MiB)", threshold, available>>20)
	summary.record(t.Name(), "2500 MiB allocated to eviction", "%.1f s", took.Seconds())
}
