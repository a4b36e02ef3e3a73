package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/runtime"
)

// ImageConfig is what `podsup run` was told about images: pulls, the
// preload directory and garbage collection.
type ImageConfig struct {
	Credentials      string // docker config.json; empty: the usual places
	RegistryCA       string
	Insecure         []string
	MaxParallelPulls int // 0: no limit
	ProgressInterval time.Duration
	PreloadDir       string
	GC               image.GCPolicy
	GCPeriod         time.Duration
}

// imageFlags are the flags of `podsup run` about images, named as the
// kubelet's where it has them.
func imageFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "image-credentials", Usage: "docker config.json `FILE` with registry credentials (auths); default: <root-dir>/config.json, else $HOME/.docker/config.json", EnvVars: envVar("image-credentials")},
		&cli.StringFlag{Name: "registry-ca", Usage: "`DIR` with a directory per registry (host:port) holding its CA certificates (*.crt) and client certificates (*.cert, *.key)", EnvVars: envVar("registry-ca")},
		&cli.StringSliceFlag{Name: "insecure-registry", Usage: "registry `HOST` (host:port, or a host for any port) pulled from over plain HTTP (repeatable); none by default", EnvVars: envVar("insecure-registry")},
		&cli.BoolFlag{Name: "serialize-image-pulls", Usage: "pull one image at a time", EnvVars: envVar("serialize-image-pulls")},
		&cli.IntFlag{Name: "max-parallel-image-pulls", Usage: "most image pulls at once; 0 for no limit", EnvVars: envVar("max-parallel-image-pulls")},
		&cli.DurationFlag{Name: "image-pull-progress-interval", Value: image.DefaultProgressInterval, Usage: "how often a running pull reports its progress in the log and in events", EnvVars: envVar("image-pull-progress-interval")},
		&cli.StringFlag{Name: "image-preload-dir", Usage: "`DIR` of image archives imported at start-up and whenever one appears", EnvVars: envVar("image-preload-dir")},
		&cli.IntFlag{Name: "image-gc-high-threshold", Value: image.DefaultGCPolicy.HighThreshold, Usage: "percent of the image filesystem in use at which unused images are removed; 100 disables", EnvVars: envVar("image-gc-high-threshold")},
		&cli.IntFlag{Name: "image-gc-low-threshold", Value: image.DefaultGCPolicy.LowThreshold, Usage: "percent of the image filesystem that image garbage collection frees down to", EnvVars: envVar("image-gc-low-threshold")},
		&cli.DurationFlag{Name: "image-minimum-gc-age", Value: image.DefaultGCPolicy.MinAge, Usage: "an image pulled or imported more recently is never removed", EnvVars: envVar("image-minimum-gc-age")},
		&cli.DurationFlag{Name: "image-gc-period", Value: 5 * time.Minute, Usage: "how often the image filesystem's usage is checked", EnvVars: envVar("image-gc-period")},
	}
}

// imageConfigFrom reads and checks the image flags.
func imageConfigFrom(c *cli.Context) (ImageConfig, error) {
	ic := ImageConfig{
		Credentials:      c.String("image-credentials"),
		RegistryCA:       c.String("registry-ca"),
		Insecure:         c.StringSlice("insecure-registry"),
		MaxParallelPulls: c.Int("max-parallel-image-pulls"),
		ProgressInterval: c.Duration("image-pull-progress-interval"),
		PreloadDir:       c.String("image-preload-dir"),
		GC: image.GCPolicy{HighThreshold: c.Int("image-gc-high-threshold"), LowThreshold: c.Int("image-gc-low-threshold"),
			MinAge: c.Duration("image-minimum-gc-age")},
		GCPeriod: c.Duration("image-gc-period"),
	}
	if ic.Credentials != "" {
		data, err := os.ReadFile(ic.Credentials)
		if err != nil {
			return ic, fmt.Errorf("--image-credentials: %w", err)
		}
		if _, _, err := image.ParseDockerConfig(data, ic.Credentials, false); err != nil {
			return ic, fmt.Errorf("--image-credentials: %w", err)
		}
	}
	if ic.RegistryCA != "" {
		if st, err := os.Stat(ic.RegistryCA); err != nil || !st.IsDir() {
			return ic, fmt.Errorf("--registry-ca %q: not a directory", ic.RegistryCA)
		}
	}
	for _, h := range ic.Insecure {
		if h == "" || strings.Contains(h, "/") {
			return ic, fmt.Errorf("--insecure-registry %q: want a host or host:port, without scheme or path", h)
		}
	}
	switch serialize := c.Bool("serialize-image-pulls"); {
	case ic.MaxParallelPulls < 0:
		return ic, fmt.Errorf("--max-parallel-image-pulls %d: must be 0 (no limit) or more", ic.MaxParallelPulls)
	case serialize && ic.MaxParallelPulls > 1:
		return ic, fmt.Errorf("--max-parallel-image-pulls %d contradicts --serialize-image-pulls", ic.MaxParallelPulls)
	case serialize:
		ic.MaxParallelPulls = 1
	}
	if ic.ProgressInterval < 100*time.Millisecond {
		return ic, fmt.Errorf("--image-pull-progress-interval %s: must be at least 100ms", ic.ProgressInterval)
	}
	if err := ic.GC.Validate(); err != nil {
		return ic, fmt.Errorf("--image-gc-high-threshold %d, --image-gc-low-threshold %d, --image-minimum-gc-age %s: %w",
			ic.GC.HighThreshold, ic.GC.LowThreshold, ic.GC.MinAge, err)
	}
	if ic.GCPeriod < time.Second {
		return ic, fmt.Errorf("--image-gc-period %s: must be at least 1s", ic.GCPeriod)
	}
	return ic, nil
}

// pullOptions configure the runtime's puller from the flags.
func (ic ImageConfig) pullOptions(rootDir string, log *slog.Logger, clk clock.WithTicker) []image.PullerOption {
	creds := image.NewCredentialFile(image.DefaultCredentialPaths(rootDir)...)
	if ic.Credentials != "" {
		creds = image.NewCredentialFile(ic.Credentials)
	}
	return []image.PullerOption{
		image.WithRegistries(image.Registries{CADir: ic.RegistryCA, Insecure: ic.Insecure}),
		image.WithCredentialFile(creds), image.WithMaxParallelPulls(ic.MaxParallelPulls),
		image.WithProgressInterval(ic.ProgressInterval), image.WithPullerLogger(log), image.WithPullerClock(clk),
	}
}

// desiredImages follows the desired pods, from the merger's deltas, for
// the image collector: every image a desired pod names is kept, whatever
// state the pod is in.
type desiredImages struct {
	mu    sync.Mutex
	pods  map[string][]string // images by pod key
	ready bool                // every source has reported
}

// track records each delta and passes it on.
func (d *desiredImages) track(ctx context.Context, in <-chan manifest.Delta) <-chan manifest.Delta {
	out := make(chan manifest.Delta)
	go func() { // owned by ctx: it ends with it
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case delta := <-in:
				d.apply(delta)
				select {
				case out <- delta:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (d *desiredImages) apply(delta manifest.Delta) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pods == nil {
		d.pods = map[string][]string{}
	}
	for _, ch := range delta.Changes {
		key := manifest.PodKey(ch.Pod)
		if ch.Kind == manifest.Remove {
			delete(d.pods, key)
			continue
		}
		var refs []string
		for _, c := range ch.Pod.Spec.InitContainers {
			refs = append(refs, c.Image)
		}
		for _, c := range ch.Pod.Spec.Containers {
			refs = append(refs, c.Image)
		}
		d.pods[key] = refs
	}
	d.ready = d.ready || delta.SourcesReady
}

// refs is an image.DesiredFunc.
func (d *desiredImages) refs() ([]string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, refs := range d.pods {
		out = append(out, refs...)
	}
	return out, d.ready
}

// imageReclaimer removes unused images for the eviction manager, once the
// image collector exists (containerd may not answer at start-up).
type imageReclaimer struct {
	gc atomic.Pointer[image.GC]
}

// removeUnused is an eviction.ReclaimFunc.
func (r *imageReclaimer) removeUnused(ctx context.Context) error {
	gc := r.gc.Load()
	if gc == nil {
		return errors.New("the image collector has not started: containerd did not answer yet")
	}
	_, err := gc.RemoveUnused(ctx)
	return err
}

// startImages starts the preloader and the image collector, owned by wg.
// Neither can stop podsup: each problem is logged and the pods run on. The
// collector removes images for the eviction manager even when its own
// thresholds are off.
func startImages(ctx context.Context, wg *sync.WaitGroup, cfg *Config, rt *runtime.Runtime, desired *desiredImages, log *slog.Logger, clk clock.WithTicker) *imageReclaimer {
	ctx = rt.Context(ctx)
	ic := cfg.Images
	reclaimer := &imageReclaimer{}
	if ic.PreloadDir != "" {
		p := image.NewPreloader(ic.PreloadDir, rt.Client(), rt.Snapshotter(), log, clk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				log.Error("image preloading is off", "err", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		// containerd may not answer yet: find its filesystem when it does.
		var usage image.UsageFunc
		for usage == nil {
			path, u, err := image.ImageFS(ctx, rt.Client(), rt.Snapshotter())
			if err == nil {
				log.Info("image garbage collection", "imagefs", path, "high", fmt.Sprintf("%d%%", ic.GC.HighThreshold),
					"low", fmt.Sprintf("%d%%", ic.GC.LowThreshold), "minimum-age", ic.GC.MinAge)
				usage = u
				continue
			}
			log.Warn("image garbage collection waits for containerd", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-clk.After(ic.GCPeriod):
			}
		}
		gc, err := image.NewGC(image.ContainerdStore{Client: rt.Client()}, usage, desired.refs, image.WithGCPolicy(ic.GC),
			image.WithProtected(cfg.PauseImage), image.WithGCClock(clk), image.WithGCLogger(log))
		if err != nil {
			log.Error("image garbage collection is off", "err", err)
			return
		}
		reclaimer.gc.Store(gc)
		if ic.GC.HighThreshold >= 100 {
			log.Info("image garbage collection is off (--image-gc-high-threshold 100); eviction may still remove unused images")
			return
		}
		gc.Run(ctx, ic.GCPeriod, clk)
	}()
	return reclaimer
}
