//go:build integration

package lifecycle

import (
	"fmt"
	"testing"
	"time"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// TestContainerdRestart stops containerd under podsup: /healthz reports it,
// the pods keep running, a manifest edited meanwhile is applied once
// containerd is back, and nothing else is restarted.
func TestContainerdRestart(t *testing.T) {
	t.Parallel()
	ctrd := testenv.StartContainerd(t)
	e := newEnvWith(t, ctrd.Address, ctrd.Client())
	names := map[string]bool{"a": true, "b": true}
	e.Write("a.yaml", harness.SleeperPod("a", harness.IdleCmd))
	e.Write("b.yaml", harness.SleeperPod("b", harness.IdleCmd))
	e.Start()
	e.WaitConverged(names)
	for cycle := 0; cycle < 2; cycle++ {
		before := e.Tasks()
		ctrd.Stop()
		harness.WaitFor(t, fmt.Sprintf("cycle %d: /healthz fails with containerd down", cycle), func() bool { return !e.Healthy() })
		e.Write("b.yaml", harness.SleeperPod("b", fmt.Sprintf("echo edited while containerd was down, cycle %d; %s", cycle, harness.IdleCmd)))
		time.Sleep(3 * time.Second)
		ctrd.Start()
		e.Client = ctrd.Client()
		took := e.WaitConverged(names)
		e.WaitRestarts("b", "main", int32(cycle+1))
		harness.WaitFor(t, fmt.Sprintf("cycle %d: /healthz ok after containerd returned", cycle), e.Healthy)
		after := e.Tasks()
		for id, was := range before {
			now, ok := after[id]
			if ok && now.PID != was.PID {
				t.Errorf("cycle %d: %s restarted", cycle, id)
			}
		}
		changed := 0
		for id := range before {
			if _, ok := after[id]; !ok {
				changed++
			}
		}
		t.Logf("cycle %d: converged %s after containerd returned; %d of %d tasks replaced (b's main was edited)", cycle, took.Round(time.Millisecond), changed, len(before))
		if changed != 1 {
			t.Errorf("cycle %d: %d tasks replaced, want 1 (the edited container)", cycle, changed)
		}
		e.CheckNoLeaks(names)
	}
}
