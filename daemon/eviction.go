package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/eviction"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/stats"
)

// evictionFlags are the kubelet's eviction flags, with its defaults.
func evictionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "eviction-hard", Value: eviction.DefaultHard, Usage: "`SIGNAL<QUANTITY`,... at which pods are evicted at once; quantities (100Mi) or percentages (10%); empty disables", EnvVars: envVar("eviction-hard")},
		&cli.StringFlag{Name: "eviction-soft", Usage: "`SIGNAL<QUANTITY`,... at which pods are evicted once the signal's grace period has passed", EnvVars: envVar("eviction-soft")},
		&cli.StringFlag{Name: "eviction-soft-grace-period", Usage: "`SIGNAL=DURATION`,... how long each soft threshold must hold before a pod is evicted", EnvVars: envVar("eviction-soft-grace-period")},
		&cli.Int64Flag{Name: "eviction-max-pod-grace-period", Usage: "longest grace period, in seconds, of a pod evicted for a soft threshold; negative: the pod's own", EnvVars: envVar("eviction-max-pod-grace-period")},
		&cli.StringFlag{Name: "eviction-minimum-reclaim", Usage: "`SIGNAL=QUANTITY`,... how far beyond its threshold a signal must recover before the pressure ends", EnvVars: envVar("eviction-minimum-reclaim")},
		&cli.DurationFlag{Name: "eviction-pressure-transition-period", Value: eviction.DefaultTransitionPeriod, Usage: "how long a pressure condition stays after its threshold was last met", EnvVars: envVar("eviction-pressure-transition-period")},
		&cli.DurationFlag{Name: "housekeeping-interval", Value: eviction.DefaultHousekeeping, Usage: "how often the node's resources are measured for eviction", EnvVars: envVar("housekeeping-interval")},
	}
}

// evictionConfigFrom reads and checks the eviction flags; each error names
// its flag.
func evictionConfigFrom(c *cli.Context) (eviction.Config, error) {
	cfg := eviction.Config{MaxPodGracePeriod: c.Int64("eviction-max-pod-grace-period"),
		TransitionPeriod: c.Duration("eviction-pressure-transition-period"), Housekeeping: c.Duration("housekeeping-interval")}
	var err error
	cfg.Thresholds, err = eviction.ParseConfig(c.String("eviction-hard"), c.String("eviction-soft"),
		c.String("eviction-soft-grace-period"), c.String("eviction-minimum-reclaim"))
	if err != nil {
		return cfg, err
	}
	if cfg.TransitionPeriod < 0 {
		return cfg, fmt.Errorf("--eviction-pressure-transition-period %s: must not be negative", cfg.TransitionPeriod)
	}
	if cfg.Housekeeping < time.Second {
		return cfg, fmt.Errorf("--housekeeping-interval %s: must be at least 1s", cfg.Housekeeping)
	}
	return cfg, nil
}

// resources measures the node and runs the eviction manager on it.
type resources struct {
	stats   *stats.Collector
	manager *eviction.Manager
}

// resourceDeps are what measuring and eviction need of the rest of podsup.
type resourceDeps struct {
	rt      *runtime.Runtime
	images  *imageReclaimer
	kill    eviction.KillPodFunc
	pods    eviction.ActivePodsFunc
	log     *slog.Logger
	clock   clock.WithTicker
	events  *events.Recorder
	changed func()
}

// newResources sets up the stats collector and the eviction manager:
// nodefs is reclaimed by removing logs no running container writes,
// imagefs by removing images no desired pod names; with one filesystem for
// both, nodefs pressure does both.
func newResources(ctx context.Context, cfg *Config, d resourceDeps) *resources {
	imageFs := d.rt.SnapshotRoot(ctx)
	collector := stats.New(stats.Config{NodeName: cfg.NodeName, RootDir: cfg.RootDir, ImageFs: imageFs, PodDir: d.rt.PodDir},
		d.rt, stats.WithLogger(d.log), stats.WithClock(d.clock))
	logs := func(ctx context.Context) error {
		_, err := d.rt.ReclaimLogs(ctx)
		return err
	}
	opts := []eviction.Option{eviction.WithLogger(d.log.With("component", "eviction")), eviction.WithClock(d.clock),
		eviction.WithEvents(d.events), eviction.WithConditionHandler(d.changed),
		eviction.WithReclaim(eviction.NodeFs, logs), eviction.WithReclaim(eviction.ImageFs, d.images.removeUnused)}
	if sameFilesystem(cfg.RootDir, imageFs) {
		opts = append(opts, eviction.WithReclaim(eviction.NodeFs, d.images.removeUnused))
	}
	m := eviction.New(cfg.Eviction, collector.EvictionStats, d.pods, d.kill, opts...)
	d.log.Info("eviction", "thresholds", thresholdList(cfg.Eviction.Thresholds), "nodefs", cfg.RootDir, "imagefs", imageFs,
		"housekeeping", cfg.Eviction.Housekeeping)
	return &resources{stats: collector, manager: m}
}

// start runs the eviction manager, owned by wg, until ctx ends.
func (r *resources) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.manager.Run(ctx)
	}()
}

// Summary is /stats/summary.
func (r *resources) Summary(ctx context.Context) (any, error) { return r.stats.Summary(ctx) }

func thresholdList(ts []eviction.Threshold) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

// sameFilesystem reports whether two paths are on one filesystem; false
// when either cannot be read.
func sameFilesystem(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}
