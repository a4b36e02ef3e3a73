//go:build integration

package reliability

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// TestReliabilityContainerdRestarts stops and starts a private containerd 5
// times under podsup while pods run, one of them crash-loops and manifests
// are edited during the outages: /healthz reports the outage within 15 s,
// podsup retries at a bounded rate meanwhile (no hot loop), and after each
// start it converges, applies the edit, keeps restarting the crash-looping
// container, and leaves every other container as it was, but those
// containerd itself drops on its start (testenv.DroppedByShimSplit), which
// are counted.
func TestReliabilityContainerdRestarts(t *testing.T) {
	t.Parallel()
	const cycles = 5
	ctrd := testenv.StartContainerd(t)
	e := newEnvWith(t, ctrd.Address, ctrd.Client())
	stable := map[string]bool{}
	for i := range 4 {
		name := fmt.Sprintf("r%d", i)
		stable[name] = true
		e.Write(name+".yaml", harness.SleeperPod(name, harness.IdleCmd))
	}
	e.Write("crasher.yaml", harness.SleeperPod("crasher", "sleep 1; exit 1"))
	e.Start("--restart-backoff-initial", "1s", "--restart-backoff-max", "2s")
	e.waitConvergedWith(stable, "crasher")

	var took, unhealthyIn []time.Duration
	var logRates []float64
	_, ctrdLog := ctrd.DroppedByShimSplit(0)
	lostByContainerd := 0
	for cycle := range cycles {
		before := e.Tasks()
		crashes := e.restarts("crasher", "main")
		edited := fmt.Sprintf("r%d", cycle%len(stable))
		editedID := harness.ContainerStatus(e.Pod(edited), "main").ContainerID

		ctrd.Stop()
		down := time.Now()
		logBefore := e.logSize()
		harness.WaitFor(t, fmt.Sprintf("cycle %d: /healthz reports containerd gone", cycle), func() bool { return !e.Healthy() })
		unhealthyIn = append(unhealthyIn, time.Since(down))
		e.Write(edited+".yaml", harness.SleeperPod(edited, fmt.Sprintf("echo edited during outage %d; %s", cycle, harness.IdleCmd)))
		time.Sleep(time.Duration(2000+rand.IntN(2000)) * time.Millisecond)
		if e.Healthy() {
			t.Errorf("cycle %d: /healthz ok while containerd is down", cycle)
		}
		// Retrying with a back-off shows in the log as a few lines a
		// second at most; a hot loop writes thousands.
		rate := float64(e.logSize()-logBefore) / time.Since(down).Seconds()
		logRates = append(logRates, rate)
		if rate > 20 {
			t.Errorf("cycle %d: podsup logged %.0f lines/s while containerd was down", cycle, rate)
		}

		ctrd.Start()
		back := time.Now()
		e.Client = ctrd.Client()
		// /pods shows the last status while containerd is away: converged
		// means the edit made during the outage has been applied.
		e.WaitReplaced(edited, "main", editedID)
		e.waitConvergedWith(stable, "crasher")
		took = append(took, time.Since(back))
		harness.WaitFor(t, fmt.Sprintf("cycle %d: /healthz ok after containerd returned", cycle), e.Healthy)
		// The crash-looping container goes on restarting, its count going
		// up: a restart whose create containerd refused keeps the count.
		harness.WaitFor(t, fmt.Sprintf("cycle %d: the crash-looping container restarts again", cycle), func() bool {
			return e.restarts("crasher", "main") > crashes
		})
		after := e.Tasks()
		changed := map[string]bool{containerOf(e.containerID(edited, "main")): true, containerOf(e.containerID("crasher", "main")): true}
		// A pod whose shim group containerd split under load (see
		// testenv.DroppedByShimSplit) loses its containers to containerd
		// itself on its start; podsup then starts the pod afresh, which
		// the convergence above proved.
		var dropped map[string]bool
		dropped, ctrdLog = ctrd.DroppedByShimSplit(ctrdLog)
		splitPods := map[string]bool{}
		for id := range dropped {
			if _, was := before[id]; was {
				pod, _, _ := strings.Cut(id, "_")
				splitPods[pod] = true
			}
		}
		kept := 0
		for id, was := range before {
			if changed[containerOf(id)] {
				continue
			}
			if pod, _, _ := strings.Cut(id, "_"); splitPods[pod] {
				t.Logf("cycle %d: container %s lost by containerd on its start (its shim group was split under load)", cycle, id)
				lostByContainerd++
				continue
			}
			if now, ok := after[id]; !ok || now.PID != was.PID {
				t.Errorf("cycle %d: container %s was replaced across the containerd restart", cycle, id)
			} else {
				kept++
			}
		}
		t.Logf("cycle %d: /healthz unhealthy %s after the stop; %.1f log lines/s during the outage; edit applied %s after the start; %d containers kept",
			cycle, unhealthyIn[cycle].Round(time.Millisecond), rate, took[cycle].Round(time.Millisecond), kept)
	}
	e.Remove("crasher.yaml")
	e.WaitConverged(stable)
	leaks := e.LeaksAfter(stable)
	for _, l := range leaks {
		t.Error(l)
	}

	harness.Record(t, "containerd stops and starts", "%d", cycles)
	harness.Record(t, "/healthz unhealthy after the stop (max)", "%s", slices.Max(unhealthyIn).Round(time.Millisecond))
	harness.Record(t, "podsup log lines/s during outages (max)", "%.1f", slices.Max(logRates))
	harness.Record(t, "outage edit applied after containerd start (median / max)", "%s / %s", median(took), slices.Max(took).Round(time.Millisecond))
	harness.Record(t, "pods converged after starts", "%d", cycles*(len(stable)+1))
	harness.Record(t, "containers containerd lost on its start (shim group split under load)", "%d", lostByContainerd)
	harness.Record(t, "leaks found", "%d", len(leaks))
}

// waitConvergedWith waits until the named pods converge and the crash-looping
// pod is published too, whatever its state, and says how long it took.
func (e *env) waitConvergedWith(names map[string]bool, crashing string) time.Duration {
	e.t.Helper()
	return harness.WaitUntil(e.t, "converged (podsup log: "+e.ProcLog.Name()+")", func() string {
		pods, err := e.Pods()
		if err != nil {
			return err.Error()
		}
		others := slices.DeleteFunc(pods, func(p v1.Pod) bool { return p.Name == crashing+"-node1" })
		switch ok, why := harness.Converged(others, names); {
		case !ok:
			return why
		case len(others) != len(pods)-1:
			return crashing + " not published"
		}
		return ""
	})
}

// restarts is a container's restart count, -1 while it is not published.
func (e *env) restarts(pod, container string) int32 {
	pods, _ := e.Pods()
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if p.Name == pod+"-node1" && cs.Name == container {
				return cs.RestartCount
			}
		}
	}
	return -1
}

// containerID is a container's ID as /pods shows it, without the runtime
// prefix.
func (e *env) containerID(pod, container string) string {
	pods, _ := e.Pods()
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if p.Name == pod+"-node1" && cs.Name == container {
				_, id, _ := strings.Cut(cs.ContainerID, "://")
				return id
			}
		}
	}
	return ""
}

// logSize counts the lines of podsup's current log.
func (e *env) logSize() int {
	data, _ := os.ReadFile(e.ProcLog.Name())
	return bytes.Count(data, []byte("\n"))
}
