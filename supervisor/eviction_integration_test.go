//go:build integration

package supervisor

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// TestEvictionAndAdmission: an evicted pod stops, is Failed with reason
// Evicted and gives back its containers and volumes; a new pod is held back
// while admission refuses it; both run once the pressure is gone.
func TestEvictionAndAdmission(t *testing.T) {
	var pressure atomic.Bool
	h := newHarness(t, WithAdmission(func(pod *v1.Pod) (bool, string, string) {
		if pressure.Load() {
			return false, "NodeDiskPressure", "The node has condition [DiskPressure]"
		}
		return true, "", ""
	}))
	victim, newcomer := "default/victim-node1", "default/newcomer-node1"
	scratch := "  volumes: [{name: scratch, emptyDir: {}}]\n"
	victimYAML := podYAML("victim", scratch, "a: "+sleeper)
	h.declare(victimYAML)
	h.waitPod(victim, "running", func(p *v1.Pod) bool { return running(p, "a") })

	pressure.Store(true)
	grace := int64(1)
	h.sup.Evict(victim, "The node was low on resource: ephemeral-storage.", &grace, func(time.Time) bool { return !pressure.Load() })
	h.waitPod(victim, "evicted", func(p *v1.Pod) bool {
		return p.Status.Phase == v1.PodFailed && p.Status.Reason == "Evicted" && p.Status.Message == "The node was low on resource: ephemeral-storage."
	})
	eventually(t, func() bool { return len(h.state(victim).Containers) == 0 }, func() string {
		return fmt.Sprintf("the evicted pod's containers removed (%d left)", len(h.state(victim).Containers))
	})

	h.declare(victimYAML, podYAML("newcomer", "", "a: "+sleeper))
	p := h.waitPod(newcomer, "held back", func(p *v1.Pod) bool { return p.Status.Reason == "NodeDiskPressure" })
	if p.Status.Phase != v1.PodPending || len(h.state(newcomer).Sandboxes) != 0 {
		t.Errorf("the refused pod is %s with %d sandboxes", p.Status.Phase, len(h.state(newcomer).Sandboxes))
	}

	pressure.Store(false)
	h.waitPod(victim, "readmitted", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && running(p, "a") })
	h.waitPod(newcomer, "admitted", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && running(p, "a") })
}
