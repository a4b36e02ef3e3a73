package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

// Defaults of the supervisor.
const (
	// DefaultResync is how often each pod is looked at even when nothing
	// happens, to catch what no event reported: the kubelet's
	// --sync-frequency. Exits, probe results and retries wake a pod sooner.
	DefaultResync = time.Minute
	// housekeeping is how often the supervisor retries work that failed and
	// proves it is alive to /healthz.
	housekeeping = 5 * time.Second
)

// Supervisor keeps the desired pods running: one worker per pod.
type Supervisor struct {
	rt          Runtime
	net         Network
	probes      ProbeResults
	hooks       Hooks
	volumes     Volumes
	metrics     Metrics
	admit       AdmitFunc
	unhealthyFn func(podKey string) map[string]Condemned
	clock       clock.WithTicker
	log         *slog.Logger
	events      *events.Recorder
	backoff     BackoffPolicy
	resync      time.Duration
	retry       time.Duration
	hostIP      string
	allocatable v1.ResourceList
	onStatus    []func(key string, pod *v1.Pod)
	onNetworkGC func(ctx context.Context, live map[string]bool) error

	wg sync.WaitGroup // workers

	// creating is held for reading while a worker creates a sandbox (its
	// network first, then its pod directory and pause container), and for
	// writing by the orphan collector: what the collector finds without a
	// container is then truly left over, not a sandbox half made.
	creating sync.RWMutex

	mu             sync.Mutex
	workers        map[string]*podWorker
	pods           map[string]*v1.Pod // published: each desired pod with its status
	config         podspec.Objects
	sourcesReady   bool
	orphansDone    bool
	lastHeartbeat  time.Time
	lastSweep      time.Time
	lastLimitCheck time.Time
	containerdErr  error
}

// Option configures a Supervisor.
type Option func(*Supervisor)

// WithNetwork sets the pod network (the cni package); by default runc gives
// each pod a namespace with loopback only.
func WithNetwork(n Network) Option { return func(s *Supervisor) { s.net = n } }

// WithNetworkGC is called once the live sandboxes are known at start-up, to
// release what dead ones left.
func WithNetworkGC(f func(ctx context.Context, live map[string]bool) error) Option {
	return func(s *Supervisor) { s.onNetworkGC = f }
}

// WithProbes sets where readiness and startup results come from.
func WithProbes(p ProbeResults) Option { return func(s *Supervisor) { s.probes = p } }

// WithUnhealthy sets where containers condemned by a liveness or startup
// probe come from, by pod key and container ID.
func WithUnhealthy(f func(podKey string) map[string]Condemned) Option {
	return func(s *Supervisor) { s.unhealthyFn = f }
}

// WithVolumes sets what makes and mounts volumes.
func WithVolumes(v Volumes) Option { return func(s *Supervisor) { s.volumes = v } }

// AdmitFunc decides whether a new pod may start now; when not, it says why
// (a reason word and a message), and the pod waits.
type AdmitFunc func(pod *v1.Pod) (ok bool, reason, message string)

// WithAdmission sets what decides whether new pods may start: the eviction
// manager, which holds them back while the node is under pressure, and the
// runtime, which refuses what the host cannot enforce. They are asked in
// order, as the kubelet's admit handlers are; the first refusal is the
// pod's reason.
func WithAdmission(fs ...AdmitFunc) Option {
	return func(s *Supervisor) {
		s.admit = func(pod *v1.Pod) (bool, string, string) {
			for _, f := range fs {
				if ok, reason, message := f(pod); !ok {
					return false, reason, message
				}
			}
			return true, "", ""
		}
	}
}

// WithMetrics sets what is told of syncs, pulls and evictions.
func WithMetrics(m Metrics) Option { return func(s *Supervisor) { s.metrics = m } }

// WithHooks sets what runs postStart and preStop handlers.
func WithHooks(h Hooks) Option { return func(s *Supervisor) { s.hooks = h } }

// WithClock sets the clock.
func WithClock(c clock.WithTicker) Option { return func(s *Supervisor) { s.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Supervisor) { s.log = l } }

// WithEvents sets the event recorder.
func WithEvents(r *events.Recorder) Option { return func(s *Supervisor) { s.events = r } }

// WithBackoff sets the crash-loop back-off.
func WithBackoff(p BackoffPolicy) Option { return func(s *Supervisor) { s.backoff = p } }

// WithResync sets how often every pod is looked at.
func WithResync(d time.Duration) Option { return func(s *Supervisor) { s.resync = d } }

// WithNode sets the node's IP and allocatable resources, for pod status and
// the downward API.
func WithNode(hostIP string, allocatable v1.ResourceList) Option {
	return func(s *Supervisor) { s.hostIP, s.allocatable = hostIP, allocatable }
}

// WithStatusListener is called, without locks held, whenever a pod's
// published status changes; pod is nil when the pod is gone.
func WithStatusListener(f func(key string, pod *v1.Pod)) Option {
	return func(s *Supervisor) { s.onStatus = append(s.onStatus, f) }
}

// New returns a supervisor running pods on rt.
func New(rt Runtime, opts ...Option) *Supervisor {
	s := &Supervisor{
		rt: rt, net: NoNetwork{}, probes: alwaysReady{}, hooks: noHooks{}, metrics: noMetrics{}, admit: func(*v1.Pod) (bool, string, string) { return true, "", "" }, clock: clock.RealClock{}, log: slog.Default(),
		backoff: DefaultBackoff, resync: DefaultResync, retry: 2 * time.Second,
		workers: map[string]*podWorker{}, pods: map[string]*v1.Pod{},
	}
	for _, o := range opts {
		o(s)
	}
	if s.events == nil {
		s.events = events.NewRecorder(events.DefaultCapacity, s.log, s.clock)
	}
	if s.volumes == nil {
		s.volumes = volume.New(func(key string) string { return "/nonexistent/" + runtime.PodHash(key) })
	}
	return s
}

// Run applies desired-state deltas until ctx ends. Then it stops its workers
// and returns; the pods keep running, and are adopted, not restarted, when
// podsup starts again.
func (s *Supervisor) Run(ctx context.Context, deltas <-chan manifest.Delta) {
	tick := s.clock.NewTicker(housekeeping)
	defer tick.Stop()
	defer s.wg.Wait()
	s.heartbeat()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-deltas:
			s.apply(ctx, d)
		case <-tick.C():
			s.maybeCollectOrphans(ctx)
			s.sweepSnapshots(ctx)
			s.checkVolumeLimits()
		}
		s.heartbeat()
	}
}

func (s *Supervisor) heartbeat() {
	s.mu.Lock()
	s.lastHeartbeat = s.clock.Now()
	s.mu.Unlock()
}

// apply hands each changed pod to its worker.
func (s *Supervisor) apply(ctx context.Context, d manifest.Delta) {
	s.mu.Lock()
	configChanged := !sameObjects(s.config, d)
	s.config = podspec.Objects{ConfigMaps: d.ConfigMaps, Secrets: d.Secrets}
	if configChanged {
		// Projected volumes and the next container starts may use them.
		for _, w := range s.workers {
			w.notify()
		}
	}
	for _, ch := range d.Changes {
		key := manifest.PodKey(ch.Pod)
		if ch.Kind == manifest.Remove {
			s.desireLocked(ctx, key, nil)
		} else {
			s.desireLocked(ctx, key, ch.Pod)
			// Once per version of the pod: a change is a new version.
			for _, w := range ch.Warnings {
				s.events.Eventf(events.Warning, "ManifestWarning", key, "", "%s", w.Error())
			}
		}
	}
	if d.SourcesReady {
		s.sourcesReady = true
	}
	s.mu.Unlock()
	s.maybeCollectOrphans(ctx)
}

// sameObjects reports whether a delta carries the ConfigMaps and Secrets
// already known: the merger hands the same objects on when none changed.
func sameObjects(cfg podspec.Objects, d manifest.Delta) bool {
	if len(cfg.ConfigMaps) != len(d.ConfigMaps) || len(cfg.Secrets) != len(d.Secrets) {
		return false
	}
	for k, v := range d.ConfigMaps {
		if cfg.ConfigMaps[k] != v {
			return false
		}
	}
	for k, v := range d.Secrets {
		if cfg.Secrets[k] != v {
			return false
		}
	}
	return true
}

// desireLocked sets a pod's desired state, starting its worker if needed.
func (s *Supervisor) desireLocked(ctx context.Context, key string, pod *v1.Pod) {
	if w := s.workers[key]; w != nil {
		w.update(pod)
		return
	}
	w := newPodWorker(s, key, pod)
	s.workers[key] = w
	s.wg.Add(1)
	go w.run(ctx)
}

// workerDone retires a worker whose pod is removed, unless a new desired
// state arrived meanwhile.
func (s *Supervisor) workerDone(w *podWorker) bool {
	s.mu.Lock()
	w.mu.Lock()
	if w.desired != nil {
		w.mu.Unlock()
		s.mu.Unlock()
		return false
	}
	w.mu.Unlock()
	delete(s.workers, w.key)
	_, published := s.pods[w.key]
	delete(s.pods, w.key)
	listeners := s.onStatus
	s.mu.Unlock()
	if published {
		for _, f := range listeners {
			f(w.key, nil)
		}
	}
	return true
}

// maybeCollectOrphans removes, once every source has reported, the pods
// that containerd holds and no source declares, and pod directories with no
// pod. It retries on the housekeeping tick until it succeeds.
func (s *Supervisor) maybeCollectOrphans(ctx context.Context) {
	s.mu.Lock()
	due := s.sourcesReady && !s.orphansDone
	s.mu.Unlock()
	if !due {
		return
	}
	s.creating.Lock()
	defer s.creating.Unlock()
	pods, err := s.rt.ListPods(ctx)
	if err != nil {
		s.setContainerdDown(err)
		s.log.Warn("cannot list pods to find orphans; will retry", "err", err)
		return
	}
	dirs, err := s.rt.PodDirs()
	if err != nil {
		s.log.Warn("cannot list pod directories", "err", err)
	}
	s.mu.Lock()
	live := map[string]bool{}
	for key, st := range pods {
		if _, desired := s.workers[key]; !desired {
			s.log.Info("removing a pod no source declares", "pod", key)
			s.desireLocked(ctx, key, nil)
		}
		for _, sb := range st.Sandboxes {
			live[sb.ID] = true
		}
	}
	desiredDirs := map[string]bool{}
	for key := range s.workers {
		desiredDirs[runtime.PodHash(key)] = true
	}
	for dir, key := range dirs {
		_, hasWorker := s.workers[key]
		_, inContainerd := pods[key]
		switch {
		case desiredDirs[filepath.Base(dir)]:
			// A desired pod's: its worker may be writing it (volumes
			// come before the key file).
		case key == "":
			if err := s.rt.RemovePodDir(dir); err != nil {
				s.log.Warn("cannot remove an orphaned pod directory", "dir", dir, "err", err)
			}
		case !hasWorker && !inContainerd:
			// A podsup that died while it removed the pod left the
			// directory, and with it its logs and cgroups: finish the job.
			namespace, name, _ := strings.Cut(key, "/")
			if err := s.rt.CleanupPod(ctx, key, namespace, name); err != nil {
				s.log.Warn("cannot clean up after an orphaned pod", "pod", key, "dir", dir, "err", err)
			}
		}
	}
	s.orphansDone = true
	s.mu.Unlock()
	if s.onNetworkGC != nil {
		if err := s.onNetworkGC(ctx, live); err != nil {
			// Retried at the next housekeeping with a fresh list of live
			// sandboxes; releasing is idempotent.
			s.log.Warn("cannot release the networks of dead sandboxes; will retry", "err", err)
			s.mu.Lock()
			s.orphansDone = false
			s.mu.Unlock()
		}
	}
}

// snapshotSweep is how often, and orphanSnapshotAge how old, snapshots
// without a container are swept: far longer than any start takes.
const (
	snapshotSweep     = time.Minute
	orphanSnapshotAge = 2 * time.Minute
)

// sweepSnapshots removes tasks and snapshots no container owns, once a
// minute.
func (s *Supervisor) sweepSnapshots(ctx context.Context) {
	now := s.clock.Now()
	s.mu.Lock()
	due := now.Sub(s.lastSweep) >= snapshotSweep
	if due {
		s.lastSweep = now
	}
	s.mu.Unlock()
	if due {
		if err := s.rt.RemoveOrphans(ctx, "", orphanSnapshotAge); err != nil {
			s.log.Warn("cannot sweep orphaned tasks and snapshots", "err", err)
		}
	}
}

func (s *Supervisor) setContainerdDown(err error) {
	s.mu.Lock()
	s.containerdErr = err
	s.mu.Unlock()
}

// Healthy returns nil while the supervisor's loop runs and containerd
// answers its workers, for /healthz.
func (s *Supervisor) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if age := s.clock.Since(s.lastHeartbeat); age > 3*housekeeping {
		errs = append(errs, fmt.Errorf("the sync loop last ran %s ago", age.Round(time.Second)))
	}
	if s.containerdErr != nil {
		errs = append(errs, fmt.Errorf("containerd: %w", s.containerdErr))
	}
	return errors.Join(errs...)
}

// SourcesReady reports whether every manifest source has reported once.
func (s *Supervisor) SourcesReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sourcesReady
}

// publish records a pod's status and tells the listeners.
func (s *Supervisor) publish(key string, pod *v1.Pod, status v1.PodStatus, _ *runtime.PodState) {
	p := pod.DeepCopy()
	p.Status = status
	s.mu.Lock()
	s.pods[key] = p
	listeners := s.onStatus
	s.mu.Unlock()
	for _, f := range listeners {
		f(key, p)
	}
}

// Pods returns every desired pod with its latest status, sorted by key.
// The caller must not modify them.
func (s *Supervisor) Pods() []*v1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*v1.Pod, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return manifest.PodKey(out[i]) < manifest.PodKey(out[j]) })
	return out
}

// Pod returns one pod with its status, or nil.
func (s *Supervisor) Pod(key string) *v1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[key]
}

// Wake makes a pod's worker look at it now (a task exited, a probe failed).
func (s *Supervisor) Wake(key string) {
	s.mu.Lock()
	w := s.workers[key]
	s.mu.Unlock()
	if w != nil {
		w.notify()
	}
}

// WakeAll makes every pod's worker look at its pod now: the node's
// pressure changed, so pods waiting for admission or readmission may start.
func (s *Supervisor) WakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.workers {
		w.notify()
	}
}

// Evict stops a pod to protect the machine (or, for an emptyDir over its
// sizeLimit, the pod's neighbours): its containers are killed within grace
// (nil: at once), its sandbox and volumes go, and its status becomes Failed
// with reason Evicted and the message. It runs again once readmit says so;
// with readmit nil, after a back-off that doubles with each eviction, as a
// crash loop's does.
func (s *Supervisor) Evict(key, message string, grace *int64, readmit func(now time.Time) bool) {
	s.mu.Lock()
	w := s.workers[key]
	s.mu.Unlock()
	if w == nil {
		return
	}
	now := s.clock.Now()
	if readmit == nil {
		w.mu.Lock()
		w.evictions++
		n := w.evictions
		w.mu.Unlock()
		delay := s.backoff.Initial
		for i := 1; i < n && delay < s.backoff.Max; i++ {
			delay *= 2
		}
		until := now.Add(min(delay, s.backoff.Max))
		readmit = func(now time.Time) bool { return !now.Before(until) }
	}
	s.events.Eventf(events.Warning, "Evicted", key, "", "%s", message)
	s.metrics.Evicted()
	w.evict(&eviction{message: message, at: now, grace: grace, readmit: readmit})
}

// checkVolumeLimits evicts pods whose emptyDir went over its sizeLimit, as
// the kubelet does, at most every limitCheck.
func (s *Supervisor) checkVolumeLimits() {
	now := s.clock.Now()
	s.mu.Lock()
	if now.Sub(s.lastLimitCheck) < limitCheck {
		s.mu.Unlock()
		return
	}
	s.lastLimitCheck = now
	var pods []*v1.Pod
	for _, p := range s.pods {
		if p.Status.Phase == v1.PodRunning && hasSizeLimit(p) {
			pods = append(pods, p)
		}
	}
	s.mu.Unlock()
	zero := int64(0)
	for _, p := range pods {
		if msg, over := s.volumes.Exceeded(p); over {
			s.Evict(manifest.PodKey(p), msg, &zero, nil)
		}
	}
}

// limitCheck is how often emptyDir usage is measured.
const limitCheck = 10 * time.Second

func hasSizeLimit(p *v1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
			return true
		}
	}
	return false
}

// Events returns the recorder the supervisor reports to.
func (s *Supervisor) Events() *events.Recorder { return s.events }

func (s *Supervisor) configObjects() podspec.Objects {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config
}

func (s *Supervisor) podInfo(sb *runtime.Sandbox) podspec.PodInfo {
	return podspec.PodInfo{IPs: sb.IPs, HostIP: s.hostIP, Allocatable: s.allocatable}
}

func (s *Supervisor) unhealthy(key string) map[string]Condemned {
	if s.unhealthyFn == nil {
		return nil
	}
	return s.unhealthyFn(key)
}
