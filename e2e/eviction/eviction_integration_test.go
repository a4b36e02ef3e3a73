//go:build integration

package eviction

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// fillOnce is a container that writes size MiB into dir once: a marker on
// a hostPath remembers it did, so that after an eviction the pod comes
// back and stays without filling the node again.
func fillOnce(dir string, size int) string {
	return fmt.Sprintf("if [ ! -e /marker/filled ]; then touch /marker/filled; dd if=/dev/zero of=%s/fill bs=1M count=%d; fi; "+
		harness.IdleCmd, dir, size)
}

const idle = harness.IdleCmd

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
	resp, err := http.Get("http://" + e.ReadOnly + "/ui/state")
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

// TestDiskPressure runs podsup with its root and log directories on a
// 200 MiB filesystem. A pod fills an emptyDir; podsup first removes logs
// no container writes, then evicts the pod, refuses new pods while the
// pressure lasts, and once it has cleared for the transition period runs
// both. A critical pod is never touched.
func TestDiskPressure(t *testing.T) {
	small := harness.MountTmpfs(t, 200)
	e := newEnv(t)
	e.Root, e.Logs = filepath.Join(small, "root"), filepath.Join(small, "logs")
	for _, dir := range []string{e.Root, e.Logs} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	marker := t.TempDir()

	// 30 MiB of logs of a pod that no longer exists, written long ago.
	orphan := filepath.Join(e.Logs, "default_gone-node1_0123", "main")
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
	e.Write("critical.yaml", critical)
	// The transition period is long enough for the test to see the pressure
	// last, and the late pod held back, on a busy machine.
	e.Start("--eviction-hard", "nodefs.available<60Mi", "--housekeeping-interval", "1s",
		"--eviction-pressure-transition-period", "30s")
	e.WaitPod("critical", "running", harness.IsRunning)
	criticalIDs := harness.ContainerIDs(e.Pod("critical"))

	start := time.Now()
	e.Write("filler.yaml", filler)
	e.WaitPod("filler", "evicted", harness.Evicted)
	took := time.Since(start)
	msg := e.Pod("filler").Status.Message
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
	e.Write("late.yaml", pressurePod("late", idle, "", volumes))
	e.WaitPod("late", "held back", func(p v1.Pod) bool {
		return p.Status.Phase == v1.PodPending && p.Status.Reason == "NodeDiskPressure"
	})

	harness.WaitFor(t, "DiskPressure cleared", func() bool {
		return e.nodeConditions()[v1.NodeDiskPressure] == v1.ConditionFalse
	})
	cleared := time.Since(start) - took
	e.WaitPod("filler", "back", harness.IsRunning)
	e.WaitPod("late", "running", harness.IsRunning)
	if got := harness.ContainerIDs(e.Pod("critical")); got != criticalIDs || !harness.IsRunning(e.Pod("critical")) {
		t.Errorf("critical pod containers %s, want %s untouched", got, criticalIDs)
	}
	harness.Record(t, "fill to eviction", "%.1f s", took.Seconds())
	harness.Record(t, "pressure cleared after eviction", "%.1f s (transition period 30 s)", cleared.Seconds())
	harness.Record(t, "whole cycle, fill to readmission", "%.1f s", time.Since(start).Seconds())
}

// memoryHog is a container that writes 64 MiB files into /mem until it
// has written maxMiB or is evicted, once: a marker on a hostPath remembers
// it did, so that the pod readmitted after the eviction stays idle. It
// prints what it has written, for a failure to show.
func memoryHog(maxMiB int) string {
	return fmt.Sprintf("if [ ! -e /marker/filled ]; then touch /marker/filled; i=0; "+
		"while [ $((i*64)) -lt %d ] && dd if=/dev/zero of=/mem/fill$i bs=1M count=64 2>/dev/null; do i=$((i+1)); echo written $((i*64)) MiB; done; fi; "+
		harness.IdleCmd, maxMiB)
}

// TestMemoryPressure sets the memory threshold marginMiB below what the
// machine has available, and runs a BestEffort pod that fills a tmpfs
// volume until it is evicted, a Burstable pod and a critical pod: the
// BestEffort pod is evicted, the others stay. The other tests, and the
// compilers of other test packages, run meanwhile and take and free
// gigabytes, so the hog does not write a fixed amount (a run failed when
// 3500 MiB did not reach a threshold 2000 MiB down): it writes until it is
// evicted, up to a cap far above the margin.
func TestMemoryPressure(t *testing.T) {
	const marginMiB = 2000
	e := newEnv(t)
	marker := t.TempDir()
	burstable := pressurePod("burstable", idle, "    resources: {requests: {memory: 10Mi}}\n", "")
	burstable = strings.Replace(burstable, "    volumeMounts: [{name: marker, mountPath: /marker}]\n", "", 1)
	critical := strings.Replace(pressurePod("critical", idle, "", "  priorityClassName: system-node-critical\n"),
		"    volumeMounts: [{name: marker, mountPath: /marker}]\n", "", 1)
	e.Write("burstable.yaml", burstable)
	e.Write("critical.yaml", critical)
	e.Start("--eviction-hard", "memory.available<1Mi", "--housekeeping-interval", "1s", "--eviction-pressure-transition-period", "5s")
	e.WaitPod("burstable", "running", harness.IsRunning)
	e.WaitPod("critical", "running", harness.IsRunning)

	// The threshold: margin below what is available now, as podsup counts it.
	availableMiB := func() int64 {
		s, err := e.StatsSummary()
		if err != nil || s.Node.Memory == nil || s.Node.Memory.AvailableBytes == nil {
			return -1
		}
		return int64(*s.Node.Memory.AvailableBytes >> 20)
	}
	available := availableMiB()
	if available < 4*marginMiB {
		t.Fatalf("memory.available %d MiB: want at least %d MiB to run this test", available, 4*marginMiB)
	}
	thresholdMiB := available - marginMiB
	threshold := fmt.Sprintf("memory.available<%dMi", thresholdMiB)
	ids := map[string]string{"burstable": harness.ContainerIDs(e.Pod("burstable")), "critical": harness.ContainerIDs(e.Pod("critical"))}
	e.Stop()
	e.Start("--eviction-hard", threshold, "--housekeeping-interval", "1s", "--eviction-pressure-transition-period", "5s")
	e.WaitPod("burstable", "adopted", harness.IsRunning)
	e.WaitPod("critical", "adopted", harness.IsRunning)

	// The cap: what the hog may write if the rest of the machine frees
	// memory as fast as it fills it, leaving a quarter of what was
	// available; the tmpfs is bounded a little above it.
	capMiB := min(available*3/4, 4*marginMiB+4096)
	volumes := fmt.Sprintf("  volumes: [{name: mem, emptyDir: {medium: Memory, sizeLimit: %dMi}}, {name: marker, hostPath: {path: %s}}]\n", capMiB+64, marker)
	mount := "    volumeMounts: [{name: mem, mountPath: /mem}, {name: marker, mountPath: /marker}]\n"
	hog := strings.Replace(pressurePod("hog", memoryHog(int(capMiB)), "", volumes), "    volumeMounts: [{name: marker, mountPath: /marker}]\n", mount, 1)
	start := time.Now()
	e.Write("hog.yaml", hog)
	// What a failure shows, read every few seconds rather than at every
	// poll: a summary costs podsup more than a pod list.
	var detail string
	var read time.Time
	harness.WaitUntil(t, "pod hog evicted", func() string {
		if time.Since(read) > 2*time.Second {
			detail = fmt.Sprintf("memory.available %d MiB, threshold %d MiB, hog log: %q", availableMiB(), thresholdMiB, e.LogTail("hog", "main"))
			read = time.Now()
		}
		pods, _ := e.Pods()
		for _, p := range pods {
			if p.Name == "hog-node1" {
				if harness.Evicted(p) {
					return ""
				}
				return fmt.Sprintf("hog %s %q; %s", p.Status.Phase, p.Status.Reason, detail)
			}
		}
		return "hog not published"
	})
	took := time.Since(start)
	if msg := e.Pod("hog").Status.Message; !strings.Contains(msg, "memory") {
		t.Errorf("eviction message %q: want the resource", msg)
	}
	for name, want := range ids {
		p := e.Pod(name)
		if !harness.IsRunning(p) || harness.ContainerIDs(p) != want {
			t.Errorf("%s: %s %q, containers %s: want running, untouched (%s)", name, p.Status.Phase, p.Status.Reason, harness.ContainerIDs(p), want)
		}
	}
	harness.Record(t, "threshold", "%s (available at start %d MiB)", threshold, available)
	harness.Record(t, "BestEffort pod filling memory until evicted", "%.1f s (%s)", took.Seconds(), e.LogTail("hog", "main"))
}
