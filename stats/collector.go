package stats

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/runtime"
)

// Runtime is what the collector asks of the containerd layer: the pods
// with their sandboxes and containers (PIDs, log paths), and how much a
// container's writable layer takes.
type Runtime interface {
	ListPods(ctx context.Context) (map[string]*runtime.PodState, error)
	SnapshotUsage(ctx context.Context, id string) (bytes, inodes uint64, err error)
}

var _ Runtime = (*runtime.Runtime)(nil)

// Config says where the node's filesystems are.
type Config struct {
	NodeName string
	// RootDir is podsup's root directory: its filesystem is nodefs.
	RootDir string
	// ImageFs is containerd's snapshot directory: its filesystem is imagefs.
	ImageFs string
	// PodDir is a pod's directory, whose volumes/ holds its volumes.
	PodDir func(key string) string
}

// Collector measures the node and its pods on demand. It keeps the
// previous CPU readings, to turn cumulative time into a rate, and recent
// directory sizes, which cost a walk of the tree.
type Collector struct {
	cfg    Config
	rt     Runtime
	host   hostPaths
	statfs StatfsFunc
	clock  clock.PassiveClock
	log    *slog.Logger
	// diskTTL is how long a directory's or writable layer's size is reused.
	diskTTL time.Duration

	// mu serializes measurements: they share the caches, and two at once
	// would only make each slower.
	mu   sync.Mutex
	cpu  map[string]cpuSample // by cgroup: "node", pod key or container ID
	disk map[string]diskSample
}

// cpuSample is a cumulative CPU reading and the rate computed at it.
type cpuSample struct {
	at    time.Time
	total uint64
	rate  *uint64
}

// diskSample is a measured size.
type diskSample struct {
	at             time.Time
	bytes, inodes  uint64
	seen           bool // measured in the current pass: kept in the cache
	measuredFailed bool
}

// Option configures a Collector.
type Option func(*Collector)

// WithHostPaths reads /proc and /sys/fs/cgroup from elsewhere (tests).
func WithHostPaths(proc, cgroup string) Option {
	return func(c *Collector) { c.host = hostPaths{proc: proc, cgroup: cgroup} }
}

// WithStatfs replaces statfs(2) (tests).
func WithStatfs(f StatfsFunc) Option { return func(c *Collector) { c.statfs = f } }

// WithClock sets the clock.
func WithClock(cl clock.PassiveClock) Option { return func(c *Collector) { c.clock = cl } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Collector) { c.log = l } }

// WithDiskCacheTTL sets how long directory sizes are reused.
func WithDiskCacheTTL(d time.Duration) Option { return func(c *Collector) { c.diskTTL = d } }

// New returns a collector of the node and the pods rt runs.
func New(cfg Config, rt Runtime, opts ...Option) *Collector {
	c := &Collector{cfg: cfg, rt: rt, host: hostPaths{proc: "/proc", cgroup: "/sys/fs/cgroup"},
		statfs: unix.Statfs, clock: clock.RealClock{}, log: slog.Default(), diskTTL: 5 * time.Second,
		cpu: map[string]cpuSample{}, disk: map[string]diskSample{}}
	for _, o := range opts {
		o(c)
	}
	if c.cfg.PodDir == nil {
		c.cfg.PodDir = func(string) string { return "" }
	}
	return c
}

// Summary measures the node and every pod with a running sandbox. Only a
// failure to read the node itself is an error; what cannot be read of a
// pod (one that just went) is left out of it.
func (c *Collector) Summary(ctx context.Context) (*statsapi.Summary, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	node, err := c.node(now)
	if err != nil {
		return nil, err
	}
	pods, err := c.rt.ListPods(ctx)
	if err != nil {
		return nil, err
	}
	s := &statsapi.Summary{Node: *node, Pods: []statsapi.PodStats{}}
	live := map[string]bool{"node": true}
	for key, ps := range pods {
		if p, ok := c.pod(ctx, key, ps, now, live); ok {
			s.Pods = append(s.Pods, p)
		}
	}
	sortPods(s.Pods)
	c.forget(live)
	return s, nil
}

// rate records a cumulative CPU reading of a cgroup and returns the CPU
// stats with the rate since the previous reading. Readings closer than a
// second apart (two callers at once) reuse the previous rate rather than
// divide noise by a tiny interval.
func (c *Collector) rate(key string, total uint64, now time.Time, live map[string]bool) *statsapi.CPUStats {
	live[key] = true
	st := &statsapi.CPUStats{Time: mtime(now), UsageCoreNanoSeconds: ptr(total)}
	prev, ok := c.cpu[key]
	switch {
	case !ok || total < prev.total:
		c.cpu[key] = cpuSample{at: now, total: total}
	case now.Sub(prev.at) < time.Second:
		st.UsageNanoCores = prev.rate
	default:
		r := uint64(float64(total-prev.total) / now.Sub(prev.at).Seconds())
		st.UsageNanoCores = &r
		c.cpu[key] = cpuSample{at: now, total: total, rate: &r}
	}
	return st
}

// forget drops the CPU readings of cgroups that are gone, and the sizes
// not asked for in this pass.
func (c *Collector) forget(live map[string]bool) {
	for k := range c.cpu {
		if !live[k] {
			delete(c.cpu, k)
		}
	}
	for k, d := range c.disk {
		if !d.seen {
			delete(c.disk, k)
			continue
		}
		d.seen = false
		c.disk[k] = d
	}
}

// cachedSize returns a size measured by measure, reusing one younger than
// the cache's lifetime.
func (c *Collector) cachedSize(key string, now time.Time, measure func() (uint64, uint64, error)) (bytes, inodes uint64, ok bool) {
	if d, hit := c.disk[key]; hit && now.Sub(d.at) < c.diskTTL {
		d.seen = true
		c.disk[key] = d
		return d.bytes, d.inodes, !d.measuredFailed
	}
	b, i, err := measure()
	c.disk[key] = diskSample{at: now, bytes: b, inodes: i, seen: true, measuredFailed: err != nil}
	if err != nil {
		c.log.Debug("cannot measure disk use", "what", key, "err", err)
	}
	return b, i, err == nil
}

func ptr[T any](v T) *T { return &v }
