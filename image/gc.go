package image

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"k8s.io/utils/clock"
)

// GCPolicy says when images are collected: when the image filesystem is
// HighThreshold percent full, down to LowThreshold, never an image younger
// than MinAge. The kubelet's --image-gc-high-threshold,
// --image-gc-low-threshold and --image-minimum-gc-age.
type GCPolicy struct {
	HighThreshold int
	LowThreshold  int
	MinAge        time.Duration
}

// DefaultGCPolicy is the kubelet's.
var DefaultGCPolicy = GCPolicy{HighThreshold: 85, LowThreshold: 80, MinAge: 2 * time.Minute}

// Validate checks the thresholds as the kubelet does; a high threshold of
// 100 disables collection.
func (p GCPolicy) Validate() error {
	switch {
	case p.HighThreshold < 0 || p.HighThreshold > 100:
		return fmt.Errorf("image GC high threshold %d%%: must be between 0 and 100", p.HighThreshold)
	case p.LowThreshold < 0 || p.LowThreshold > 100:
		return fmt.Errorf("image GC low threshold %d%%: must be between 0 and 100", p.LowThreshold)
	case p.LowThreshold >= p.HighThreshold && p.HighThreshold != 100:
		return fmt.Errorf("image GC low threshold %d%% must be below the high threshold %d%%", p.LowThreshold, p.HighThreshold)
	case p.MinAge < 0:
		return fmt.Errorf("image minimum GC age %s: must not be negative", p.MinAge)
	}
	return nil
}

// FSUsage is the size and free space of the image filesystem.
type FSUsage struct {
	Capacity  int64
	Available int64
}

// Percent is the share in use, rounded up, as the kubelet computes it.
func (u FSUsage) Percent() int {
	if u.Capacity <= 0 {
		return 0
	}
	return 100 - int(u.Available*100/u.Capacity)
}

// GCImage is what the collector knows of one image.
type GCImage struct {
	Name string
	Size int64 // bytes of content
	// Created is when the image was pulled or imported: the later of its
	// record's creation and last update.
	Created time.Time
	// LastUsed is when a container was last created from it (the
	// LabelLastUsed label); zero if never.
	LastUsed time.Time
	// InUse is set when a container, running or not, uses the image.
	InUse bool
}

// GCStore lists and removes images: containerd's image store in podsup's
// namespace (ContainerdStore), or a fake.
type GCStore interface {
	Images(ctx context.Context) ([]GCImage, error)
	Remove(ctx context.Context, name string) error
}

// UsageFunc measures the image filesystem.
type UsageFunc func() (FSUsage, error)

// DesiredFunc returns the image references that the desired pods name,
// failed and evicted pods included; known is false until every manifest
// source has reported, and nothing is collected before.
type DesiredFunc func() (refs []string, known bool)

// GC removes the least recently used images no desired pod names when the
// image filesystem fills up. It never removes the pause image, an image a
// desired pod names, one a container uses, or one pulled or imported within
// the minimum age.
type GC struct {
	store     GCStore
	usage     UsageFunc
	desired   DesiredFunc
	protected []string // references never removed, besides PauseRepo's
	policy    GCPolicy
	clock     clock.PassiveClock
	log       *slog.Logger
}

type gcOptions struct {
	policy    GCPolicy
	protected []string
	clock     clock.PassiveClock
	log       *slog.Logger
}

// GCOption configures a GC.
type GCOption func(*gcOptions) error

// WithGCPolicy sets the thresholds and the minimum age.
func WithGCPolicy(p GCPolicy) GCOption {
	return func(o *gcOptions) error {
		if err := p.Validate(); err != nil {
			return err
		}
		o.policy = p
		return nil
	}
}

// WithProtected adds references that are never removed, such as
// --pod-infra-container-image.
func WithProtected(refs ...string) GCOption {
	return func(o *gcOptions) error { o.protected = append(o.protected, refs...); return nil }
}

// WithGCClock sets the clock.
func WithGCClock(c clock.PassiveClock) GCOption {
	return func(o *gcOptions) error { o.clock = c; return nil }
}

// WithGCLogger sets the logger.
func WithGCLogger(l *slog.Logger) GCOption {
	return func(o *gcOptions) error { o.log = l; return nil }
}

// NewGC returns a collector of store's images on the filesystem usage
// measures.
func NewGC(store GCStore, usage UsageFunc, desired DesiredFunc, opts ...GCOption) (*GC, error) {
	o := gcOptions{policy: DefaultGCPolicy}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.clock == nil {
		o.clock = clock.RealClock{}
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	g := &GC{store: store, usage: usage, desired: desired, policy: o.policy, clock: o.clock, log: o.log}
	for _, ref := range o.protected {
		if ref != "" {
			g.protected = append(g.protected, normalizeOrSelf(ref))
		}
	}
	return g, nil
}

// GCResult is what one collection found and did.
type GCResult struct {
	Before, After FSUsage
	Removed       []GCImage
	// Kept says why each image that was not removed was kept; set only
	// when usage reached the high threshold.
	Kept map[string]string
}

// Collect runs one collection: nothing unless usage has reached the high
// threshold, then candidates in order until usage is at or under the low
// threshold, measuring after each removal.
func (g *GC) Collect(ctx context.Context) (GCResult, error) {
	u, err := g.usage()
	if err != nil {
		return GCResult{}, fmt.Errorf("measure the image filesystem: %w", err)
	}
	if g.policy.HighThreshold >= 100 || u.Percent() < g.policy.HighThreshold {
		return GCResult{Before: u, After: u}, nil
	}
	return g.remove(ctx, u, "image filesystem over the high threshold", func(u FSUsage) bool { return u.Percent() <= g.policy.LowThreshold })
}

// RemoveUnused removes every image that may go, whatever the thresholds:
// the eviction manager's way to reclaim the image filesystem before it
// evicts a pod. What a desired pod names, the protected images and images
// younger than the minimum age stay, as in Collect.
func (g *GC) RemoveUnused(ctx context.Context) (GCResult, error) {
	u, err := g.usage()
	if err != nil {
		return GCResult{}, fmt.Errorf("measure the image filesystem: %w", err)
	}
	return g.remove(ctx, u, "reclaiming the image filesystem", func(FSUsage) bool { return false })
}

// remove removes candidates in order until done says usage is low enough.
func (g *GC) remove(ctx context.Context, u FSUsage, why string, done func(FSUsage) bool) (GCResult, error) {
	res := GCResult{Before: u, After: u}
	refs, known := g.desired()
	if !known {
		g.log.Info(why+"; collection waits for every manifest source", "usage", fmt.Sprintf("%d%%", u.Percent()))
		return res, nil
	}
	all, err := g.store.Images(ctx)
	if err != nil {
		return res, fmt.Errorf("list images: %w", err)
	}
	order, kept := g.candidates(all, refs)
	res.Kept = kept
	g.log.Info(why+"; removing least recently used images", "usage", fmt.Sprintf("%d%%", u.Percent()),
		"high", fmt.Sprintf("%d%%", g.policy.HighThreshold), "low", fmt.Sprintf("%d%%", g.policy.LowThreshold),
		"candidates", len(order), "kept", len(kept))
	for _, im := range order {
		if done(u) {
			break
		}
		if err := g.store.Remove(ctx, im.Name); err != nil && !errdefs.IsNotFound(err) {
			g.log.Warn("image garbage collection cannot remove an image", "image", im.Name, "err", err)
			res.Kept[im.Name] = "removal failed: " + err.Error()
			continue
		}
		res.Removed = append(res.Removed, im)
		g.log.Info("image garbage collection removed an image", "image", im.Name, "bytes", im.Size,
			"last-used", formatTime(im.LastUsed), "created", formatTime(im.Created))
		if u, err = g.usage(); err != nil {
			return res, fmt.Errorf("measure the image filesystem: %w", err)
		}
		res.After = u
	}
	if u.Percent() > g.policy.LowThreshold {
		g.log.Warn("image filesystem still over the low threshold: no other image may be removed",
			"usage", fmt.Sprintf("%d%%", u.Percent()), "low", fmt.Sprintf("%d%%", g.policy.LowThreshold), "kept", summarize(res.Kept))
	}
	return res, nil
}

// Run collects every period until ctx ends, starting at once.
func (g *GC) Run(ctx context.Context, period time.Duration, tick clock.WithTicker) {
	t := tick.NewTicker(period)
	defer t.Stop()
	for {
		if _, err := g.Collect(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("image garbage collection failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// candidates orders the removable images, least recently used first (never
// used before used, then the oldest), and says why each other is kept.
func (g *GC) candidates(all []GCImage, desired []string) ([]GCImage, map[string]string) {
	want := map[string]bool{}
	for _, ref := range desired {
		want[normalizeOrSelf(ref)] = true
	}
	now := g.clock.Now()
	kept := map[string]string{}
	var order []GCImage
	for _, im := range all {
		name := normalizeOrSelf(im.Name)
		switch {
		case strings.HasPrefix(name, PauseRepo+":") || contains(g.protected, name):
			kept[im.Name] = "pause image"
		case want[name]:
			kept[im.Name] = "named by a desired pod"
		case im.InUse:
			kept[im.Name] = "used by a container"
		case now.Sub(im.Created) < g.policy.MinAge:
			kept[im.Name] = fmt.Sprintf("pulled or imported %s ago, within the minimum age %s", now.Sub(im.Created).Round(time.Second), g.policy.MinAge)
		default:
			order = append(order, im)
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if !a.LastUsed.Equal(b.LastUsed) {
			return a.LastUsed.Before(b.LastUsed)
		}
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.Name < b.Name
	})
	return order, kept
}

// summarize counts the reasons images were kept, for one log line.
func summarize(kept map[string]string) string {
	counts := map[string]int{}
	for _, why := range kept {
		if strings.HasPrefix(why, "pulled or imported") {
			why = "within the minimum age"
		}
		counts[why]++
	}
	var parts []string
	for _, why := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[why], why))
	}
	return strings.Join(parts, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
