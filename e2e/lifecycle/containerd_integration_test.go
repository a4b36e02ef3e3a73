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
	e, names := runTwoSleepers(t, ctrd)
	_, ctrdLog := ctrd.DroppedByShimSplit(0)
	for cycle := 0; cycle < 2; cycle++ {
		before := e.Tasks()
		bID := harness.ContainerStatus(e.Pod("b"), "main").ContainerID
		ctrd.Stop()
		harness.WaitFor(t, fmt.Sprintf("cycle %d: /healthz fails with containerd down", cycle), func() bool { return !e.Healthy() })
		e.Write("b.yaml", harness.SleeperPod("b", fmt.Sprintf("echo edited while containerd was down, cycle %d; %s", cycle, harness.IdleCmd)))
		time.Sleep(3 * time.Second)
		ctrd.Start()
		e.Client = ctrd.Client()
		took := e.WaitConverged(names)
		e.WaitReplaced("b", "main", bID)
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

// TestContainerdUpgrade upgrades the containerd under running pods from
// Debian's 1.6 to 2.3 as a package upgrade does: the old daemon stops, the
// new one starts on the same root, state and socket. podsup, still
// running, must see the same pods and restart none of them, and a manifest
// edited afterwards is applied by the new daemon.
func TestContainerdUpgrade(t *testing.T) {
	t.Parallel()
	to := testenv.BinDir()
	if to == "" {
		t.Skip("no containerd 2 to upgrade to: PODSUP_TEST_CONTAINERD_BIN is not set")
	}
	ctrd := testenv.StartContainerdFrom(t, "") // the host's: Debian's 1.6
	if ctrd.Major != 1 {
		testenv.Unavailable(t, "the containerd on PATH is %d.x, not 1.x", ctrd.Major)
	}
	e, names := runTwoSleepers(t, ctrd)
	before := e.Tasks()

	began := time.Now()
	ctrd.Upgrade(to)
	e.Client = ctrd.Client()
	if ctrd.Major != 2 {
		t.Fatalf("upgraded to containerd %d.x, want 2.x", ctrd.Major)
	}
	e.WaitConverged(names)
	harness.WaitFor(t, "/healthz ok on the new containerd", e.Healthy)
	healthy := time.Since(began)
	after := e.Tasks()
	kept := 0
	for id, was := range before {
		if now, ok := after[id]; !ok || now.PID != was.PID {
			t.Errorf("%s was replaced across the upgrade", id)
		} else {
			kept++
		}
	}
	t.Logf("%d of %d tasks kept across the upgrade to containerd 2", kept, len(before))

	bID := harness.ContainerStatus(e.Pod("b"), "main").ContainerID
	e.Write("b.yaml", harness.SleeperPod("b", "echo edited after the upgrade; "+harness.IdleCmd))
	e.WaitReplaced("b", "main", bID)
	e.WaitConverged(names)
	e.CheckNoLeaks(names)
	harness.Record(t, "tasks kept across the upgrade from 1.6 to 2.3", "%d of %d", kept, len(before))
	harness.Record(t, "old daemon stopped → podsup healthy on the new one", "%s", healthy.Round(time.Millisecond))
}

// runTwoSleepers starts podsup on the private containerd with two idle
// pods, a and b, and waits until they run.
func runTwoSleepers(t *testing.T, ctrd *testenv.Containerd) (*env, map[string]bool) {
	e := newEnvWith(t, ctrd.Address, ctrd.Client())
	names := map[string]bool{"a": true, "b": true}
	e.Write("a.yaml", harness.SleeperPod("a", harness.IdleCmd))
	e.Write("b.yaml", harness.SleeperPod("b", harness.IdleCmd))
	e.Start()
	e.WaitConverged(names)
	return e, names
}
