//go:build integration

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/podsup/podsup/internal/testenv"
)

// TestContainerdRestart stops containerd under podsup: /healthz reports it,
// the pods keep running, a manifest edited meanwhile is applied once
// containerd is back, and nothing else is restarted.
func TestContainerdRestart(t *testing.T) {
	ctrd := testenv.StartContainerd(t)
	e := newEnvWith(t, ctrd.Address, ctrd.Client())
	names := map[string]bool{"a": true, "b": true}
	e.write("a.yaml", sleeperPod("a", "trap 'exit 0' TERM; while true; do sleep 0.5; done"))
	e.write("b.yaml", sleeperPod("b", "trap 'exit 0' TERM; while true; do sleep 0.5; done"))
	e.start()
	e.waitConverged(names, 60*time.Second)
	for cycle := 0; cycle < 2; cycle++ {
		before := e.tasks()
		ctrd.Stop()
		deadline := time.Now().Add(15 * time.Second)
		for e.healthy() && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if e.healthy() {
			t.Fatalf("cycle %d: /healthz still ok with containerd down", cycle)
		}
		e.write("b.yaml", sleeperPod("b", fmt.Sprintf("echo edited while containerd was down, cycle %d; trap 'exit 0' TERM; while true; do sleep 0.5; done", cycle)))
		time.Sleep(3 * time.Second)
		ctrd.Start()
		e.client = ctrd.Client()
		took := e.waitConverged(names, 60*time.Second)
		e.waitRestarts("b", "main", int32(cycle+1), 30*time.Second)
		for time.Now().Before(time.Now().Add(15*time.Second)) && !e.healthy() {
			time.Sleep(200 * time.Millisecond)
		}
		if !e.healthy() {
			t.Fatalf("cycle %d: /healthz not ok after containerd returned", cycle)
		}
		after := e.tasks()
		for id, was := range before {
			now, ok := after[id]
			if ok && now.pid != was.pid {
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
		e.checkNoLeaks(names)
	}
}
