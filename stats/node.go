package stats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// node measures the machine: memory against its capacity as the kubelet
// computes memory.available, CPU of the root cgroup, the host's network,
// nodefs, imagefs and process IDs.
func (c *Collector) node(now time.Time) (*statsapi.NodeStats, error) {
	n := &statsapi.NodeStats{NodeName: c.cfg.NodeName}
	var errs []error
	data, err := os.ReadFile(filepath.Join(c.host.proc, "meminfo"))
	if err != nil {
		return nil, fmt.Errorf("node memory: %w", err)
	}
	mi, err := parseMeminfo(data)
	if err != nil {
		return nil, fmt.Errorf("node memory: %w", err)
	}
	root, err := c.host.rootMemory()
	if err != nil {
		return nil, err
	}
	n.Memory = memoryStats(root, now)
	// memory.available is the capacity less the root cgroup's working set,
	// not MemFree or MemAvailable: the page cache the kernel would have
	// to work to reclaim counts as used, as it does for the kubelet.
	n.Memory.AvailableBytes = ptr(sub(mi.total, root.workingSet))

	data, err = os.ReadFile(filepath.Join(c.host.proc, "stat"))
	if err == nil {
		var ps procStat
		if ps, err = parseProcStat(data); err == nil {
			n.StartTime = metav1.NewTime(time.Unix(ps.bootTime, 0))
			cpu := ps.cpuNanos
			if v1, err := readUint(filepath.Join(c.host.cgroup, "cpuacct", "cpuacct.usage")); err == nil {
				cpu = v1
			}
			n.CPU = c.rate("node", cpu, now, map[string]bool{})
		}
	}
	errs = append(errs, err)

	devs, err := c.host.readNetDev(0, hostSkip)
	errs = append(errs, err)
	n.Network = networkStats(devs, now)

	nodefs, err := statfs(c.statfs, c.cfg.RootDir)
	if err != nil {
		return nil, fmt.Errorf("nodefs: %w", err)
	}
	n.Fs = nodefs.stats(now)
	if c.cfg.ImageFs != "" {
		imagefs, err := statfs(c.statfs, c.cfg.ImageFs)
		if err != nil {
			return nil, fmt.Errorf("imagefs: %w", err)
		}
		n.Runtime = &statsapi.RuntimeStats{ImageFs: imagefs.stats(now), ContainerFs: imagefs.stats(now)}
	}

	rl, err := c.host.readRlimit()
	if err != nil {
		return nil, fmt.Errorf("node processes: %w", err)
	}
	n.Rlimit = &statsapi.RlimitStats{Time: mtime(now), MaxPID: ptr(rl.maxPID), NumOfRunningProcesses: ptr(rl.tasks)}
	if err := errors.Join(errs...); err != nil {
		c.log.Debug("node stats incomplete", "err", err)
	}
	return n, nil
}

// hostSkip leaves out of the node's network what is not its own traffic:
// loopback and the host ends of pods' veth pairs, whose traffic the pods
// report.
func hostSkip(name string) bool { return name == "lo" || strings.HasPrefix(name, "veth") }

// podSkip leaves loopback out of a pod's network.
func podSkip(name string) bool { return name == "lo" }

// networkStats are the counters of the interfaces, the first one inline as
// the default, as the kubelet reports eth0.
func networkStats(devs []netDev, now time.Time) *statsapi.NetworkStats {
	if len(devs) == 0 {
		return nil
	}
	ns := &statsapi.NetworkStats{Time: mtime(now)}
	for _, d := range devs {
		ns.Interfaces = append(ns.Interfaces, statsapi.InterfaceStats{Name: d.name, RxBytes: ptr(d.rxBytes), RxErrors: ptr(d.rxErrors),
			TxBytes: ptr(d.txBytes), TxErrors: ptr(d.txErrors)})
	}
	ns.InterfaceStats = ns.Interfaces[0]
	for _, i := range ns.Interfaces {
		if i.Name == "eth0" {
			ns.InterfaceStats = i
		}
	}
	return ns
}

// memoryStats are a cgroup's memory; available only under a limit.
func memoryStats(m *memStats, now time.Time) *statsapi.MemoryStats {
	if m == nil {
		return nil
	}
	st := &statsapi.MemoryStats{Time: mtime(now), UsageBytes: ptr(m.usage), WorkingSetBytes: ptr(m.workingSet), RSSBytes: ptr(m.rss),
		PageFaults: ptr(m.pageFaults), MajorPageFaults: ptr(m.majorPageFaults)}
	if m.limit > 0 {
		st.AvailableBytes = ptr(sub(m.limit, m.workingSet))
	}
	return st
}

// stats is a whole filesystem.
func (f fsInfo) stats(now time.Time) *statsapi.FsStats {
	return &statsapi.FsStats{Time: mtime(now), AvailableBytes: ptr(f.available), CapacityBytes: ptr(f.capacity), UsedBytes: ptr(f.used),
		InodesFree: ptr(f.inodesFree), Inodes: ptr(f.inodes), InodesUsed: ptr(sub(f.inodes, f.inodesFree))}
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func mtime(t time.Time) metav1.Time { return metav1.NewTime(t) }
