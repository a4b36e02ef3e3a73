//go:build integration

package lifecycle

import (
	"fmt"
	"testing"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// TestStatsSummary runs a pod that burns CPU, holds 64 MiB of memory in a
// memory-backed emptyDir, writes 20 MiB to its writable layer, 16 MiB to a
// disk emptyDir and some log, and sends traffic, and reads /stats/summary
// as a kubelet summary reader would.
func TestStatsSummary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cmd := "dd if=/dev/zero of=/mem/f bs=1M count=64; dd if=/dev/zero of=/layer bs=1M count=20; dd if=/dev/zero of=/disk/f bs=1M count=16; " +
		"for i in $(seq 2000); do echo line $i; done; wget -T 1 -q http://$(ip route | awk '/default/ {print $3}'):1/ ; " +
		"trap 'exit 0' TERM; while true; do :; done"
	e.Write("busy.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: busy}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: mem, emptyDir: {medium: Memory}}, {name: disk, emptyDir: {}}]
  containers:
  - name: main
    image: %s
    command: [sh, -c, %q]
    volumeMounts: [{name: mem, mountPath: /mem}, {name: disk, mountPath: /disk}]
`, testenv.BusyboxRef, cmd))
	e.Start()
	e.WaitPod("busy", "running", harness.IsRunning)

	var p *statsapi.PodStats
	harness.WaitUntil(t, "pod stats complete", func() string {
		s, err := e.StatsSummary()
		if err != nil {
			return err.Error()
		}
		p = nil
		for i := range s.Pods {
			if s.Pods[i].PodRef.Name == "busy-node1" {
				p = &s.Pods[i]
			}
		}
		if p == nil {
			return "pod not in the summary"
		}
		return podStatsProblem(p)
	})
	c := p.Containers[0]
	harness.Record(t, "busy container", "%d millicores, working set %d MiB, writable layer %d MiB, logs %d KiB",
		*c.CPU.UsageNanoCores/1e6, *c.Memory.WorkingSetBytes>>20, *c.Rootfs.UsedBytes>>20, *c.Logs.UsedBytes>>10)
}

// podStatsProblem says what of a busy pod's stats is not yet as expected.
func podStatsProblem(p *statsapi.PodStats) string {
	if len(p.Containers) != 1 {
		return fmt.Sprintf("%d containers", len(p.Containers))
	}
	c := p.Containers[0]
	switch {
	case p.PodRef.UID == "" || p.PodRef.Namespace != "default":
		return fmt.Sprintf("podRef %+v", p.PodRef)
	case c.CPU == nil || c.CPU.UsageNanoCores == nil || *c.CPU.UsageNanoCores == 0:
		// Any rate: on a machine whose cores are busy with other work, a
		// busy loop gets what the scheduler leaves it. The figure is
		// recorded in the summary.
		return "no CPU rate for a busy loop"
	case p.Memory == nil || *p.Memory.WorkingSetBytes < 64<<20:
		return "pod working set under the 64 MiB it holds in tmpfs"
	case c.Rootfs == nil || *c.Rootfs.UsedBytes < 20<<20:
		return "writable layer under the 20 MiB written"
	case c.Logs == nil || *c.Logs.UsedBytes < 10000:
		return "logs under the 2000 lines written"
	case len(p.VolumeStats) != 2:
		return fmt.Sprintf("%d volumes", len(p.VolumeStats))
	case p.EphemeralStorage == nil || *p.EphemeralStorage.UsedBytes < 36<<20:
		return "ephemeral storage under writable layer + disk emptyDir"
	case *p.EphemeralStorage.UsedBytes > 60<<20:
		return "ephemeral storage counts the memory-backed emptyDir"
	case p.Network == nil || *p.Network.TxBytes == 0:
		return "no network traffic sent"
	case p.ProcessStats == nil || *p.ProcessStats.ProcessCount < 2:
		return "fewer than 2 processes (pause and the shell)"
	}
	return ""
}
