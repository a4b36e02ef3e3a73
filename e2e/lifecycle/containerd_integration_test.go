//go:build integration

package lifecycle

import (
	"fmt"
	"strings"
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
	_, ctrdLog := ctrd.DroppedByShimSplit(0)
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
		// A pod whose shim group containerd split under load loses its
		// containers to containerd itself on its start (see
		// testenv.DroppedByShimSplit); podsup starts it afresh.
		var dropped map[string]bool
		dropped, ctrdLog = ctrd.DroppedByShimSplit(ctrdLog)
		split := map[string]bool{}
		for id := range dropped {
			pod, _, _ := strings.Cut(id, "_")
			split[pod] = true
		}
		changed, lost := 0, 0
		for id, was := range before {
			if pod, _, _ := strings.Cut(id, "_"); split[pod] {
				lost++
				continue
			}
			if now, ok := after[id]; !ok {
				changed++
			} else if now.PID != was.PID {
				t.Errorf("cycle %d: %s restarted", cycle, id)
			}
		}
		t.Logf("cycle %d: converged %s after containerd returned; %d of %d tasks replaced (b's main was edited); %d lost by containerd on its start (shim group split)",
			cycle, took.Round(time.Millisecond), changed, len(before), lost)
		if want := 1; lost > 0 && changed > want || lost == 0 && changed != want {
			t.Errorf("cycle %d: %d tasks replaced, want %d (the edited container)", cycle, changed, want)
		}
		e.CheckNoLeaks(names)
	}
}
