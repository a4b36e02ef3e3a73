package stats

import (
	"context"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/podsup/podsup/eviction"
)

// EvictionStats measures the node for the eviction manager: its signals
// and what each pod uses, from one Summary.
func (c *Collector) EvictionStats(ctx context.Context) (*eviction.Stats, error) {
	s, err := c.Summary(ctx)
	if err != nil {
		return nil, err
	}
	return Signals(s), nil
}

// Signals are the eviction signals and pod usage of a summary. A signal
// whose figures are missing is left out, so it is neither met nor cleared.
func Signals(s *statsapi.Summary) *eviction.Stats {
	st := &eviction.Stats{Signals: map[eviction.Signal]eviction.Amount{}, Pods: map[string]eviction.PodUsage{}}
	n := s.Node
	if m := n.Memory; m != nil && m.AvailableBytes != nil && m.WorkingSetBytes != nil {
		st.Signals[eviction.MemoryAvailable] = eviction.Amount{Available: *m.AvailableBytes, Capacity: *m.AvailableBytes + *m.WorkingSetBytes}
	}
	fsSignals(st, n.Fs, eviction.NodeFsAvailable, eviction.NodeFsInodesFree)
	if n.Runtime != nil {
		fsSignals(st, n.Runtime.ImageFs, eviction.ImageFsAvailable, eviction.ImageFsInodesFree)
	}
	if r := n.Rlimit; r != nil && r.MaxPID != nil && r.NumOfRunningProcesses != nil {
		limit, cur := uint64(max(*r.MaxPID, 0)), uint64(max(*r.NumOfRunningProcesses, 0))
		st.Signals[eviction.PIDAvailable] = eviction.Amount{Available: sub(limit, cur), Capacity: limit}
	}
	for _, p := range s.Pods {
		var u eviction.PodUsage
		if p.Memory != nil && p.Memory.WorkingSetBytes != nil {
			u.MemoryWorkingSet = *p.Memory.WorkingSetBytes
		}
		if e := p.EphemeralStorage; e != nil && e.UsedBytes != nil {
			u.Ephemeral = *e.UsedBytes
		}
		for _, c := range p.Containers {
			if c.Rootfs != nil && c.Rootfs.UsedBytes != nil {
				u.Rootfs += *c.Rootfs.UsedBytes
			}
		}
		if p.ProcessStats != nil && p.ProcessStats.ProcessCount != nil {
			u.Processes = *p.ProcessStats.ProcessCount
		}
		st.Pods[p.PodRef.Namespace+"/"+p.PodRef.Name] = u
	}
	return st
}

func fsSignals(st *eviction.Stats, fs *statsapi.FsStats, bytes, inodes eviction.Signal) {
	if fs == nil {
		return
	}
	if fs.AvailableBytes != nil && fs.CapacityBytes != nil {
		st.Signals[bytes] = eviction.Amount{Available: *fs.AvailableBytes, Capacity: *fs.CapacityBytes}
	}
	if fs.InodesFree != nil && fs.Inodes != nil && *fs.Inodes > 0 {
		st.Signals[inodes] = eviction.Amount{Available: *fs.InodesFree, Capacity: *fs.Inodes}
	}
}
