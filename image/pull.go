package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// Defaults of the puller.
const (
	DefaultSnapshotter = "overlayfs"
	// DefaultProgressInterval is how often a running pull reports its bytes.
	DefaultProgressInterval = 10 * time.Second
	// DefaultStallTimeout is how long a pull attempt may go without a byte
	// before it is given up, as containerd's CRI plugin's
	// image_pull_progress_timeout.
	DefaultStallTimeout = 5 * time.Minute
)

// Puller pulls images through containerd's resolver with the credentials
// of a docker config.json and of pods' pull secrets. Container starts that
// want the same image with the same credentials share one download.
type Puller struct {
	client       *containerd.Client
	snapshotter  string
	registries   Registries
	nodeCreds    *CredentialFile
	slots        chan struct{} // a slot per running pull; nil: no limit
	interval     time.Duration
	stallTimeout time.Duration
	clock        clock.WithTicker
	log          *slog.Logger
	fetch        fetchFunc

	mu     sync.Mutex
	active map[string]*pull // by namespace, image and credentials
}

// fetchFunc makes one pull attempt with one credential (nil: anonymous),
// counting bytes in t.
type fetchFunc func(ctx context.Context, name string, cred *Credential, t *tracker) (containerd.Image, error)

// pull is one download and everyone waiting for it; its fields after done
// are guarded by Puller.mu.
type pull struct {
	done      chan struct{} // closed when img and err are set
	img       containerd.Image
	err       error
	cancel    context.CancelFunc
	progress  PullProgress
	listeners map[int]func(PullProgress)
	nextID    int
}

type pullerOptions struct {
	snapshotter string
	registries  Registries
	creds       *CredentialFile
	maxParallel int
	interval    time.Duration
	stall       time.Duration
	clock       clock.WithTicker
	log         *slog.Logger
	fetch       fetchFunc
}

// PullerOption configures a Puller.
type PullerOption func(*pullerOptions) error

// WithSnapshotter sets the snapshotter images are unpacked for.
func WithSnapshotter(s string) PullerOption {
	return func(o *pullerOptions) error { o.snapshotter = s; return nil }
}

// WithRegistries sets registry CAs and the hosts reached over plain HTTP.
func WithRegistries(r Registries) PullerOption {
	return func(o *pullerOptions) error { o.registries = r; return nil }
}

// WithCredentialFile sets the node's docker config.json.
func WithCredentialFile(f *CredentialFile) PullerOption {
	return func(o *pullerOptions) error { o.creds = f; return nil }
}

// WithMaxParallelPulls bounds the pulls that run at once: 1 serializes
// them, 0 sets no limit.
func WithMaxParallelPulls(n int) PullerOption {
	return func(o *pullerOptions) error {
		if n < 0 {
			return fmt.Errorf("max parallel image pulls %d: must be 0 (no limit) or more", n)
		}
		o.maxParallel = n
		return nil
	}
}

// WithProgressInterval sets how often a running pull reports its progress.
func WithProgressInterval(d time.Duration) PullerOption {
	return func(o *pullerOptions) error {
		if d <= 0 {
			return fmt.Errorf("pull progress interval %s: must be positive", d)
		}
		o.interval = d
		return nil
	}
}

// WithStallTimeout sets how long a pull attempt may go without progress.
func WithStallTimeout(d time.Duration) PullerOption {
	return func(o *pullerOptions) error {
		if d <= 0 {
			return fmt.Errorf("pull stall timeout %s: must be positive", d)
		}
		o.stall = d
		return nil
	}
}

// WithPullerClock sets the clock.
func WithPullerClock(c clock.WithTicker) PullerOption {
	return func(o *pullerOptions) error { o.clock = c; return nil }
}

// WithPullerLogger sets the logger.
func WithPullerLogger(l *slog.Logger) PullerOption {
	return func(o *pullerOptions) error { o.log = l; return nil }
}

// withFetch replaces the download itself, for tests.
func withFetch(f fetchFunc) PullerOption {
	return func(o *pullerOptions) error { o.fetch = f; return nil }
}

// NewPuller returns a puller that pulls through client.
func NewPuller(client *containerd.Client, opts ...PullerOption) (*Puller, error) {
	var o pullerOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.snapshotter == "" {
		o.snapshotter = DefaultSnapshotter
	}
	if o.interval == 0 {
		o.interval = DefaultProgressInterval
	}
	if o.stall == 0 {
		o.stall = DefaultStallTimeout
	}
	if o.clock == nil {
		o.clock = clock.RealClock{}
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	p := &Puller{client: client, snapshotter: o.snapshotter, registries: o.registries, nodeCreds: o.creds,
		interval: o.interval, stallTimeout: o.stall, clock: o.clock, log: o.log, fetch: o.fetch, active: map[string]*pull{}}
	if o.maxParallel > 0 {
		p.slots = make(chan struct{}, o.maxParallel)
	}
	if p.fetch == nil {
		p.fetch = p.fetchFromRegistry
	}
	return p, nil
}

type pullRequest struct {
	secrets  []*v1.Secret
	progress func(PullProgress)
}

// PullOption adds to one pull.
type PullOption func(*pullRequest)

// WithPullSecrets adds the credentials of a pod's image pull secrets, tried
// before the node's.
func WithPullSecrets(secrets []*v1.Secret) PullOption {
	return func(r *pullRequest) { r.secrets = secrets }
}

// WithProgress is called when the pull starts, every progress interval
// while it runs, and when it ends. It must not block.
func WithProgress(f func(PullProgress)) PullOption {
	return func(r *pullRequest) { r.progress = f }
}

// Pull pulls name, a normalized reference, into ctx's containerd namespace
// and unpacks it. Credentials that match the image are tried in turn, the
// pull secrets' first, as the kubelet does; with none, the pull is
// anonymous. If ctx ends, Pull returns at once, and the download stops when
// nobody else waits for it. Errors never contain a credential.
func (p *Puller) Pull(ctx context.Context, name string, opts ...PullOption) (containerd.Image, error) {
	var req pullRequest
	for _, o := range opts {
		o(&req)
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	creds, problems := p.credentials(name, req.secrets)
	key := ns + "\x00" + name + "\x00" + fingerprint(creds)

	p.mu.Lock()
	pl := p.active[key]
	if pl == nil {
		pctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), ns))
		pl = &pull{done: make(chan struct{}), cancel: cancel, listeners: map[int]func(PullProgress){},
			progress: PullProgress{Image: name, Phase: PullWaiting, Started: p.clock.Now(), Credentials: sources(creds)}}
		p.active[key] = pl
		go p.run(pctx, key, pl, name, creds, problems) // owned by pl: ends with the download
	}
	pl.progress.Waiters++
	id := pl.nextID
	pl.nextID++
	joined := pl.progress
	if req.progress != nil {
		pl.listeners[id] = req.progress
	}
	p.mu.Unlock()
	if req.progress != nil && joined.Phase == PullRunning {
		req.progress(joined) // a late joiner hears that the pull runs
	}

	defer func() {
		p.mu.Lock()
		delete(pl.listeners, id)
		pl.progress.Waiters--
		if pl.progress.Waiters == 0 {
			pl.cancel() // nobody waits any more; a new request starts afresh
			if p.active[key] == pl {
				delete(p.active, key)
			}
		}
		p.mu.Unlock()
	}()
	select {
	case <-pl.done:
		return pl.img, pl.err
	case <-ctx.Done():
		return nil, fmt.Errorf("pull %s: %w", name, ctx.Err())
	}
}

// run downloads, once a slot is free, and reports to the listeners.
func (p *Puller) run(ctx context.Context, key string, pl *pull, name string, creds []Credential, problems []string) {
	var img containerd.Image
	var err error
	defer func() {
		p.mu.Lock()
		if p.active[key] == pl {
			delete(p.active, key)
		}
		pl.img, pl.err = img, err
		pl.progress.Elapsed = p.clock.Since(pl.progress.Started)
		if err != nil {
			pl.progress.Phase, pl.progress.Err = PullFailed, err
		} else {
			pl.progress.Phase = PullDone
			pl.progress.Done = pl.progress.Total
		}
		p.mu.Unlock()
		pl.cancel()
		p.notify(pl) // before done: a waiter stops listening when it returns
		close(pl.done)
	}()
	if p.slots != nil {
		select {
		case p.slots <- struct{}{}:
			defer func() { <-p.slots }()
		default:
			p.log.Info("image pull waits for a slot", "image", name)
			select {
			case p.slots <- struct{}{}:
				defer func() { <-p.slots }()
			case <-ctx.Done():
				err = ctx.Err()
				return
			}
		}
	}
	p.mu.Lock()
	pl.progress.Phase = PullRunning
	p.mu.Unlock()
	p.notify(pl)
	p.log.Info("pulling image", "image", name, "credentials", sources(creds))
	img, err = p.attempts(ctx, pl, name, creds, problems)
	if err != nil {
		p.log.Warn("image pull failed", "image", name, "err", err)
		return
	}
	p.mu.Lock()
	size, took := pl.progress.Total, p.clock.Since(pl.progress.Started)
	p.mu.Unlock()
	p.log.Info("pulled image", "image", name, "bytes", size, "took", took.Round(time.Millisecond))
}

// attempts tries each credential in turn, reporting progress on the way.
func (p *Puller) attempts(ctx context.Context, pl *pull, name string, creds []Credential, problems []string) (containerd.Image, error) {
	tries := make([]*Credential, 0, len(creds))
	for i := range creds {
		tries = append(tries, &creds[i])
	}
	if len(tries) == 0 {
		tries = append(tries, nil)
	}
	var errs []string
	for _, cred := range tries {
		actx, stall := context.WithCancelCause(ctx)
		t := newTracker(p.contentStore())
		stop := p.watch(actx, pl, name, t, stall)
		img, err := p.fetch(actx, name, cred, t)
		stop()
		if cause := context.Cause(actx); cause != nil && ctx.Err() == nil {
			err = cause
		}
		stall(nil)
		if err == nil {
			return img, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := redact(err.Error(), creds)
		if cred != nil {
			msg = fmt.Sprintf("with credentials from %s: %s", cred.Source, msg)
		}
		errs = append(errs, msg)
	}
	for _, pr := range problems {
		errs = append(errs, redact(pr, creds))
	}
	return nil, errors.New(strings.Join(errs, "; "))
}

func (p *Puller) contentStore() contentStatuser {
	if p.client == nil {
		return nil
	}
	return p.client.ContentStore()
}

// watch reports t's bytes every interval until stop is called, and stalls
// the attempt when no byte has come for the stall timeout: a registry that
// accepts a connection and then says nothing would hold the pods forever.
func (p *Puller) watch(ctx context.Context, pl *pull, name string, t *tracker, stall context.CancelCauseFunc) (stop func()) {
	tick := p.clock.NewTicker(p.interval)
	last, lastChange := int64(0), p.clock.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by stop: it waits for this goroutine
		defer wg.Done()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C():
			}
			done, total := t.bytes(ctx)
			if now := p.clock.Now(); done != last {
				last, lastChange = done, now
			} else if idle := now.Sub(lastChange); idle >= p.stallTimeout {
				stall(fmt.Errorf("pull stalled: no progress for %s", idle.Round(time.Second)))
				return
			}
			p.mu.Lock()
			pl.progress.Done, pl.progress.Total = done, total
			p.mu.Unlock()
			p.log.Info("image pull progress", "image", name, "bytes", done, "of", total)
			p.notify(pl)
		}
	}()
	return func() {
		tick.Stop()
		close(quit)
		wg.Wait()
		done, total := t.bytes(ctx)
		p.mu.Lock()
		pl.progress.Done, pl.progress.Total = done, total
		p.mu.Unlock()
	}
}

// notify sends the pull's progress to its listeners, outside the lock.
func (p *Puller) notify(pl *pull) {
	p.mu.Lock()
	pr := pl.progress
	fns := make([]func(PullProgress), 0, len(pl.listeners))
	for _, f := range pl.listeners {
		fns = append(fns, f)
	}
	p.mu.Unlock()
	for _, f := range fns {
		f(pr)
	}
}

// Pulls lists the pulls waiting or running, oldest first.
func (p *Puller) Pulls() []PullProgress {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PullProgress, 0, len(p.active))
	for _, pl := range p.active {
		pr := pl.progress
		pr.Elapsed = p.clock.Since(pr.Started)
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].Image < out[j].Image
	})
	return out
}

// credentials are those of the pull secrets, then the node's, that match
// the image, without repeats, and the problems met reading them.
func (p *Puller) credentials(name string, secrets []*v1.Secret) ([]Credential, []string) {
	sk, problems := SecretKeyring(secrets)
	for _, pr := range problems {
		p.log.Warn("image pull secret skipped", "image", name, "problem", pr)
	}
	found := sk.Lookup(name)
	nk, warnings, changed, err := p.nodeCreds.Keyring()
	if changed {
		for _, w := range warnings {
			p.log.Warn("registry credentials", "problem", w)
		}
		if err != nil {
			p.log.Error("cannot read registry credentials", "err", err)
		} else if path := p.nodeCreds.Path(); path != "" {
			p.log.Info("registry credentials read", "file", path, "registries", nk.Len())
		}
	}
	if err != nil {
		problems = append(problems, err.Error())
	}
	found = append(found, nk.Lookup(name)...)
	var out []Credential
	seen := map[[2]string]bool{}
	for _, c := range found {
		k := [2]string{c.Username, c.Secret}
		if !seen[k] {
			seen[k] = true
			out = append(out, c)
		}
	}
	return out, problems
}

// fingerprint tells credential sets apart without keeping them.
func fingerprint(creds []Credential) string {
	h := sha256.New()
	for _, c := range creds {
		fmt.Fprintf(h, "%q %q %q\n", c.Source, c.Username, c.Secret)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// sources names where credentials come from, for logs: never the secrets.
func sources(creds []Credential) string {
	if len(creds) == 0 {
		return "none"
	}
	var s []string
	for _, c := range creds {
		s = append(s, c.Source)
	}
	return strings.Join(s, ", ")
}

// fetchFromRegistry pulls through containerd's resolver and unpacks.
func (p *Puller) fetchFromRegistry(ctx context.Context, name string, cred *Credential, t *tracker) (containerd.Image, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	domain := reference.Domain(named)
	hosts := p.registries.hosts(ctx, domain, cred)
	img, err := p.client.Pull(ctx, name, containerd.WithResolver(p.registries.resolver(hosts)),
		containerd.WithPullUnpack, containerd.WithPullSnapshotter(p.snapshotter), containerd.WithImageHandlerWrapper(t.wrap))
	if err != nil {
		return nil, withRegistryMessage(ctx, hosts, domain, err)
	}
	return img, nil
}
