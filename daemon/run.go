// Package daemon is `podsup run`: it reads the flags and wires the manifest
// sources, the supervisor and the APIs together.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/manifest"
)

// RunCommand is `podsup run`.
func RunCommand() *cli.Command {
	return &cli.Command{
		Name:   "run",
		Usage:  "run the static pods declared by the manifest sources",
		Flags:  runFlags(),
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

// Run runs podsup until ctx ends or it receives SIGINT or SIGTERM.
func Run(ctx context.Context, cfg *Config) error {
	log := newLogger(cfg.Verbosity)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	updates := make(chan manifest.Update)
	sources, err := startSources(ctx, &wg, cfg, log, updates)
	if err != nil {
		return err
	}
	deltas := make(chan manifest.Delta)
	merger := manifest.NewMerger(sources, clock.RealClock{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		merger.Run(ctx, updates, deltas)
	}()
	log.Info("podsup started", "node", cfg.NodeName, "sources", sources)
	for {
		select {
		case <-ctx.Done():
			log.Info("podsup stopping")
			return nil
		case d := <-deltas:
			logDelta(log, d)
		}
	}
}

// startSources starts one goroutine per configured source, owned by wg, and
// returns the source names in order of precedence.
func startSources(ctx context.Context, wg *sync.WaitGroup, cfg *Config, log *slog.Logger, out chan<- manifest.Update) ([]string, error) {
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
			return nil, err
		}
		names, runs = append(names, manifest.SourceHTTP), append(runs, src.Run)
	}
	if len(runs) == 0 {
		return nil, errors.New("no manifest source configured")
	}
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx, out)
		}()
	}
	return names, nil
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
