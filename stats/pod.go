package stats

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/podsup/podsup/runtime"
)

// pod measures one pod with a running sandbox: the pod cgroup (the parent
// of the sandbox's), the sandbox's network namespace, each running
// container, and the volumes and logs on disk.
func (c *Collector) pod(ctx context.Context, key string, ps *runtime.PodState, now time.Time, live map[string]bool) (statsapi.PodStats, bool) {
	sb := runningSandbox(ps)
	if sb == nil {
		return statsapi.PodStats{}, false
	}
	ns, name, _ := strings.Cut(key, "/")
	p := statsapi.PodStats{PodRef: statsapi.PodReference{Name: name, Namespace: ns, UID: sb.PodUID}, StartTime: mtime(sb.CreatedAt),
		Containers: []statsapi.ContainerStats{}}
	if cg, err := c.host.cgroupsOf(sb.Pid); err == nil {
		if st, err := c.host.read(cg.parent()); err == nil || st.mem != nil {
			if st.cpu != nil {
				p.CPU = c.rate(key, *st.cpu, now, live)
			}
			p.Memory = memoryStats(st.mem, now)
			if st.pids != nil {
				p.ProcessStats = &statsapi.ProcessStats{ProcessCount: st.pids}
			}
		}
	}
	if !sb.HostNetwork {
		if devs, err := c.host.readNetDev(sb.Pid, podSkip); err == nil {
			p.Network = networkStats(devs, now)
		}
	}

	var ephemeral, ephemeralInodes uint64
	var logDir string
	for _, ctr := range ps.Containers {
		if ctr.State != runtime.StateRunning || ctr.Pid == 0 || ctr.SandboxID != sb.ID {
			continue
		}
		cs := statsapi.ContainerStats{Name: ctr.Name, StartTime: mtime(ctr.StartedAt)}
		if cg, err := c.host.cgroupsOf(ctr.Pid); err == nil {
			if st, err := c.host.read(cg); err == nil || st.mem != nil {
				if st.cpu != nil {
					cs.CPU = c.rate(ctr.ID, *st.cpu, now, live)
				}
				cs.Memory = memoryStats(st.mem, now)
			}
		}
		if b, i, ok := c.cachedSize("rootfs:"+ctr.ID, now, func() (uint64, uint64, error) { return c.rt.SnapshotUsage(ctx, ctr.ID) }); ok {
			cs.Rootfs = used(b, i, now)
			ephemeral, ephemeralInodes = ephemeral+b, ephemeralInodes+i
		}
		if ctr.LogPath != "" {
			dir := filepath.Dir(ctr.LogPath)
			logDir = filepath.Dir(dir)
			if b, i, ok := c.cachedSize(dir, now, func() (uint64, uint64, error) { return dirUsage(dir) }); ok {
				cs.Logs = used(b, i, now)
			}
		}
		p.Containers = append(p.Containers, cs)
	}
	sort.Slice(p.Containers, func(i, j int) bool { return p.Containers[i].Name < p.Containers[j].Name })
	// The pod's logs are every container's, those of containers no longer
	// running and of earlier instances too.
	if logDir != "" {
		if b, i, ok := c.cachedSize(logDir, now, func() (uint64, uint64, error) { return dirUsage(logDir) }); ok {
			ephemeral, ephemeralInodes = ephemeral+b, ephemeralInodes+i
		}
	}
	for _, v := range c.volumes(key, now) {
		p.VolumeStats = append(p.VolumeStats, v.VolumeStats)
		if v.onDisk {
			ephemeral, ephemeralInodes = ephemeral+*v.UsedBytes, ephemeralInodes+*v.InodesUsed
		}
	}
	p.EphemeralStorage = used(ephemeral, ephemeralInodes, now)
	return p, true
}

// runningSandbox is the pod's newest sandbox if its task runs.
func runningSandbox(ps *runtime.PodState) *runtime.Sandbox {
	if len(ps.Sandboxes) == 0 || !ps.Sandboxes[0].Ready || ps.Sandboxes[0].Pid == 0 {
		return nil
	}
	return ps.Sandboxes[0]
}

// volume is one measured volume, and whether it takes the node's disk
// (not memory: tmpfs volumes count against the pod's memory instead).
type volume struct {
	statsapi.VolumeStats
	onDisk bool
}

// volumes measures the directories of the pod's volumes: emptyDir,
// configMap, secret, downwardAPI and projected ones. hostPath volumes are
// the host's and are not the pod's to account for.
func (c *Collector) volumes(key string, now time.Time) []volume {
	dir := filepath.Join(c.cfg.PodDir(key), "volumes")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []volume
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, i, ok := c.cachedSize(path, now, func() (uint64, uint64, error) { return dirUsage(path) })
		if !ok {
			continue
		}
		v := volume{VolumeStats: statsapi.VolumeStats{Name: e.Name(), FsStats: *used(b, i, now)}, onDisk: true}
		var st unix.Statfs_t
		if err := c.statfs(path, &st); err == nil {
			v.onDisk = st.Type != unix.TMPFS_MAGIC
			v.AvailableBytes = ptr(st.Bavail * uint64(st.Bsize))
			v.CapacityBytes = ptr(st.Blocks * uint64(st.Bsize))
		}
		out = append(out, v)
	}
	return out
}

// used is the part of a filesystem something takes.
func used(bytes, inodes uint64, now time.Time) *statsapi.FsStats {
	return &statsapi.FsStats{Time: mtime(now), UsedBytes: ptr(bytes), InodesUsed: ptr(inodes)}
}

func sortPods(pods []statsapi.PodStats) {
	sort.Slice(pods, func(i, j int) bool {
		a, b := pods[i].PodRef, pods[j].PodRef
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}
