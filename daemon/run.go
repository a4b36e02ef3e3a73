// Package daemon is `podsup run`: it reads the flags and wires the manifest
// sources, the supervisor and the APIs together.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/cni"
	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/health"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/metrics"
	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/supervisor"
	"github.com/podsup/podsup/volume"
)

// RunCommand is `podsup run`.
func RunCommand() *cli.Command {
	return &cli.Command{
		Name:   "run",
		Usage:  "run the static pods declared by the manifest sources",
		Flags:  slices.Concat(runFlags(), imageFlags(), evictionFlags()),
		Before: applyConfigFile,
		Action: func(c *cli.Context) error {
			cfg, err := configFrom(c)
			if err != nil {
				return cli.Exit("podsup run: "+err.Error(), 2)
			}
			if err := Run(c.Context, cfg); err != nil {
				return cli.Exit("podsup run: "+err.Error(), 1)
			}
			return nil
		},
	}
}

// newLogger logs in logfmt-like text to stderr at the given verbosity.
func newLogger(verbosity int) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbosity >= 1 {
		opts.Level = slog.LevelDebug
	}
	opts.AddSource = verbosity >= 2
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Run runs podsup until ctx ends or it receives SIGINT or SIGTERM. Its pods
// keep running after it stops; the next podsup adopts them.
func Run(ctx context.Context, cfg *Config) error {
	log := newLogger(cfg.Verbosity)
	slog.SetDefault(log)
	// The Kubernetes libraries (client-go, the streaming packages) log
	// through klog: into podsup's log, structured, instead of klog's own
	// lines on stderr.
	klog.SetSlogLogger(log.With("component", "k8s"))
	if len(cfg.IgnoredConfigFields) > 0 {
		log.Warn("the KubeletConfiguration of --config sets fields podsup does not implement: they are ignored", "fields", cfg.IgnoredConfigFields)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clk := clock.RealClock{}
	recorder := events.NewRecorder(events.DefaultCapacity, log, clk)

	var sup *supervisor.Supervisor // set before any task can exit
	rt, err := runtime.New(cfg.ContainerdAddress,
		runtime.WithNamespace(cfg.ContainerdNS), runtime.WithRootDir(cfg.RootDir), runtime.WithLogDir(cfg.LogDir),
		runtime.WithSeccompDir(cfg.SeccompDir),
		runtime.WithPauseImage(cfg.PauseImage), runtime.WithCgroupDriver(cfg.CgroupDriver),
		runtime.WithLogRotation(cfg.LogMaxSize, cfg.LogMaxFiles), runtime.WithLogger(log), runtime.WithClock(clk),
		runtime.WithDNS(podspec.DNSConfig{ClusterDNS: cfg.ClusterDNS, ClusterDomain: cfg.ClusterDomain, HostResolvConf: cfg.ResolvConf}),
		runtime.WithPullOptions(cfg.Images.pullOptions(cfg.RootDir, log, clk)...),
		runtime.WithExitHandler(func(key string) { sup.Wake(key) }))
	if err != nil {
		return err
	}
	defer rt.Close()
	// As the kubelet: the runtime's own configuration chooses the cgroup
	// driver where it says, --cgroup-driver where it does not.
	cgroupDriver, fromRuntime := rt.UseRuntimeCgroupDriver(ctx)
	hostIP := cfg.NodeIP
	if hostIP == "" {
		hostIP = nodeIP()
	}
	network, err := cni.New(cni.WithConfDir(cfg.CNIConfDir), cni.WithBinDirs(cfg.CNIBinDirs), cni.WithRootDir(cfg.RootDir),
		cni.WithPodCIDR(cfg.PodCIDR), cni.WithLogger(log), cni.WithClock(clk))
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	stats := metrics.New(func() []*v1.Pod { return sup.Pods() }, clk)
	probes := health.New(execer{rt}, health.WithClock(clk), health.WithLogger(log), health.WithEvents(recorder),
		health.WithChangeHandler(func(key string) { sup.Wake(key) }), health.WithResultHandler(stats.ProbeResult))
	defer probes.Stop()
	desired := &desiredImages{}
	images := startImages(ctx, &wg, cfg, rt, desired, log, clk)
	res := newResources(ctx, cfg, resourceDeps{rt: rt, images: images, log: log, clock: clk, events: recorder,
		kill: func(key, message string, grace *int64, readmit func(time.Time) bool) {
			sup.Evict(key, message, grace, readmit)
		},
		pods: func() []*v1.Pod { return sup.Pods() }, changed: func() { sup.WakeAll() }})
	kube, err := newKubeClient(ctx, cfg.Mirror, cfg.NodeName, log, clk)
	if err != nil {
		return err
	}
	kube.start()
	mirrors, err := newMirrors(cfg, kube, mirrorDeps{log: log, clock: clk, events: recorder, hostIP: hostIP, runtimeVersion: rt.Version,
		ready: func() error { return sup.Healthy() }, sourcesReady: func() bool { return sup.SourcesReady() },
		pressure: res.manager.Conditions})
	if err != nil {
		return err
	}
	sup = supervisor.New(rt, supervisor.WithLogger(log), supervisor.WithClock(clk), supervisor.WithEvents(recorder),
		supervisor.WithNetwork(cniNetwork{network}), supervisor.WithNetworkGC(network.GC),
		supervisor.WithProbes(probes), supervisor.WithHooks(probes), supervisor.WithUnhealthy(condemned(probes)),
		supervisor.WithVolumes(volume.New(rt.PodDir, volume.WithClock(clk), volume.WithLogger(log), volume.WithImages(rt))),
		supervisor.WithStatusListener(func(key string, pod *v1.Pod) {
			if pod == nil {
				probes.Remove(key)
			} else {
				probes.Sync(pod)
			}
		}),
		supervisor.WithStatusListener(mirrors.Update), supervisor.WithStatusListener(stats.PodStatus), supervisor.WithMetrics(stats),
		supervisor.WithBackoff(supervisor.BackoffPolicy{Initial: cfg.BackoffInitial, Max: cfg.BackoffMax, ResetAfter: supervisor.DefaultBackoff.ResetAfter}),
		supervisor.WithNode(hostIP, allocatable()), supervisor.WithResync(cfg.SyncFrequency),
		supervisor.WithAdmission(res.manager.Admit, cfg.Sysctls.Admit, rt.Admit))
	mirrors.Start(ctx, &wg)
	res.start(ctx, &wg)
	updates := make(chan manifest.Update)
	sources, push, err := startSources(ctx, &wg, cfg, log, updates)
	if err != nil {
		return err
	}
	deltas := make(chan manifest.Delta)
	merger := manifest.NewMerger(sources, clk)
	wg.Add(2)
	go func() {
		defer wg.Done()
		merger.Run(ctx, updates, deltas)
	}()
	supDone := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(supDone)
		sup.Run(ctx, desired.track(ctx, logDeltas(ctx, log, stats, deltas)))
	}()
	deps := api.Deps{
		Pods: sup, Probes: probes, Events: recorder, Metrics: stats.Handler(), LogDir: cfg.LogDir,
		Stats: res, Streams: streams{pods: sup.Pod, rt: rt}, StreamLimits: cfg.API.Streams,
		Node: nodeSummary{name: cfg.NodeName, rootDir: cfg.RootDir, ready: sup.Healthy, pressure: res.manager.Conditions},
		Health: []api.HealthCheck{
			{Name: "containerd", Check: func() error { return rt.Ping(ctx) }},
			{Name: "syncloop", Check: sup.Healthy},
			{Name: "sources", Check: func() error {
				if !sup.SourcesReady() {
					return errors.New("not every manifest source has been read yet")
				}
				return nil
			}},
		},
	}
	if push != nil {
		deps.Push = push // never a nil pointer in an interface: nil Push switches the routes off
	}
	if err := (servers{ctx: ctx, wg: &wg, cancel: cancel, log: log}).start(cfg, deps, hostIP, kube); err != nil {
		return err
	}
	log.Info("podsup started", "node", cfg.NodeName, "node-ip", hostIP, "sources", sources, "containerd", cfg.ContainerdAddress,
		"namespace", cfg.ContainerdNS, "network", network.Network(), "cgroup-driver", cgroupDriver, "cgroup-driver-from-containerd", fromRuntime)
	<-ctx.Done()
	log.Info("podsup stopping; pods keep running")
	<-supDone
	return nil
}

// logDeltas logs each desired-state change, counts manifest problems, and
// passes the deltas on.
func logDeltas(ctx context.Context, log *slog.Logger, stats *metrics.Metrics, in <-chan manifest.Delta) <-chan manifest.Delta {
	out := make(chan manifest.Delta)
	go func() { // owned by ctx: it ends with it
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case d := <-in:
				logDelta(log, d)
				stats.ManifestProblems(d.Problems)
				select {
				case out <- d:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// startSources starts one goroutine per source, owned by wg, and returns
// the source names in order of precedence, and the push source the API
// stores pushed manifests in.
func startSources(ctx context.Context, wg *sync.WaitGroup, cfg *Config, log *slog.Logger, out chan<- manifest.Update) ([]string, *manifest.PushSource, error) {
	var names []string
	var runs []func(context.Context, chan<- manifest.Update)
	if cfg.Manifests != "" {
		st := manifest.Static{NodeName: cfg.NodeName, Source: manifest.SourceFile}
		src := manifest.NewDirSource(cfg.Manifests, st, manifest.WithResync(cfg.FileCheckFrequency), manifest.WithLogger(log))
		names, runs = append(names, manifest.SourceFile), append(runs, src.Run)
	}
	if cfg.ManifestURL != "" {
		st := manifest.Static{NodeName: cfg.NodeName, Source: manifest.SourceHTTP}
		opts := []manifest.URLOption{manifest.WithHeader(cfg.ManifestURLHeaders), manifest.WithInterval(cfg.HTTPCheckFrequency), manifest.WithURLLogger(log)}
		if cfg.ManifestURLCA != "" {
			opts = append(opts, manifest.WithCAFile(cfg.ManifestURLCA))
		}
		src, err := manifest.NewURLSource(cfg.ManifestURL, st, opts...)
		if err != nil {
			return nil, nil, err
		}
		names, runs = append(names, manifest.SourceHTTP), append(runs, src.Run)
	}
	var push *manifest.PushSource
	if cfg.API.Address != "" || cfg.API.AdminSocket != "" {
		var err error
		st := manifest.Static{NodeName: cfg.NodeName, Source: manifest.SourceAPI}
		if push, err = manifest.NewPushSource(filepath.Join(cfg.RootDir, "manifests-api"), st, log); err != nil {
			return nil, nil, fmt.Errorf("pushed manifests: %w", err)
		}
		names, runs = append(names, manifest.SourceAPI), append(runs, push.Run)
	}
	if len(runs) == 0 {
		return nil, nil, errors.New("no manifest source configured")
	}
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx, out)
		}()
	}
	return names, push, nil
}

func logDelta(log *slog.Logger, d manifest.Delta) {
	for _, ch := range d.Changes {
		log.Info("desired pod "+ch.Kind.String(), "pod", manifest.PodKey(ch.Pod), "uid", ch.Pod.UID,
			"manifest", ch.Pod.Annotations[manifest.AnnotationManifest], "containers", len(ch.Pod.Spec.Containers))
	}
	for _, p := range d.Problems {
		log.Debug("manifest problem", "origin", p.Origin, "err", fmt.Sprint(p.Err))
	}
}

// withProfiling adds Go's pprof handlers under /debug/pprof/.
func withProfiling(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
