//go:build integration

package lifecycle

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/podsup/podsup/e2e/harness"
)

// TestCrashWhileCreatingPods SIGKILLs podsup at a random moment while it
// creates, updates and removes ten pods, and starts it again: every pod must
// converge, with no duplicate container, orphaned task, snapshot or pod
// directory, and containers that were running before the crash keep their
// IDs and PIDs unless their spec changed.
func TestCrashWhileCreatingPods(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	names := map[string]bool{}
	version := map[string]int{}
	for i := 0; i < 10; i++ {
		n := fmt.Sprintf("p%d", i)
		names[n], version[n] = true, 1
		e.Write(n+".yaml", harness.SleeperPod(n, harness.IdleCmd))
	}
	for round := 0; round < 4; round++ {
		e.Start()
		delay := time.Duration(rand.IntN(1500)) * time.Millisecond
		time.Sleep(delay)
		e.Kill()
		before := e.Tasks()

		e.Start()
		took := e.WaitConverged(names)
		t.Logf("round %d: killed after %s with %d tasks running; converged %s after restart", round, delay, len(before), took.Round(time.Millisecond))
		e.CheckNoLeaks(names)
		after := e.Tasks()
		kept := 0
		for id, was := range before {
			if now, ok := after[id]; ok {
				kept++
				if now.PID != was.PID {
					t.Errorf("container %s was restarted: pid %d -> %d", id, was.PID, now.PID)
				}
			}
		}
		t.Logf("round %d: %d of %d running tasks kept their ID and PID", round, kept, len(before))

		// Change the desired state for the next round: edit two pods,
		// remove one, add one.
		e.Kill()
		a, b := fmt.Sprintf("p%d", round), fmt.Sprintf("p%d", round+4)
		for _, n := range []string{a, b} {
			version[n]++
			names[n] = true // a pod removed earlier comes back
			e.Write(n+".yaml", harness.SleeperPod(n, fmt.Sprintf("echo v%d; %s", version[n], harness.IdleCmd)))
		}
		gone := fmt.Sprintf("p%d", 9-round)
		e.Remove(gone + ".yaml")
		delete(names, gone)
		added := fmt.Sprintf("q%d", round)
		e.Write(added+".yaml", harness.SleeperPod(added, harness.IdleCmd))
		names[added] = true
	}
	e.Start()
	e.WaitConverged(names)
	e.CheckNoLeaks(names)
}
