package health

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/podspec"
)

// Verdict is a container a liveness or startup probe condemned: it is to be
// killed (with the probe's grace period when it sets one) and restarted as
// its pod's restart policy says.
type Verdict struct {
	Reason             string
	GracePeriodSeconds *int64
}

// ProbeStatus is the latest run of one probe of one container instance.
type ProbeStatus struct {
	Container   string    `json:"container"`
	ContainerID string    `json:"containerID"`
	Probe       string    `json:"probe"`  // Liveness, Readiness or Startup
	Result      string    `json:"result"` // of the last run: success or failure
	State       string    `json:"state"`  // what the thresholds made of it: success or failure
	Output      string    `json:"output,omitempty"`
	Time        time.Time `json:"time"`
}

type workerKey struct {
	id   string
	kind Kind
}

// instance is what the manager knows of one container instance.
type instance struct {
	podKey, name string
	state        map[Kind]Result      // past the thresholds
	last         map[Kind]ProbeStatus // the last run
	verdict      *Verdict
}

// Manager runs the probes of every running container.
type Manager struct {
	prober   runner
	clock    clock.WithTickerAndDelayedExecution
	log      *slog.Logger
	events   *events.Recorder
	onChange func(podKey string)
	onResult func(kind Kind, result Result)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the workers

	mu        sync.Mutex
	workers   map[workerKey]*worker
	instances map[string]*instance // by container ID
}

// Option configures a Manager.
type Option func(*Manager)

// WithClock sets the clock: of probe periods, delays and timeouts, and of
// sleep hooks.
func WithClock(c clock.WithTickerAndDelayedExecution) Option { return func(m *Manager) { m.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithEvents sets where Unhealthy events go.
func WithEvents(r *events.Recorder) Option { return func(m *Manager) { m.events = r } }

// WithChangeHandler is called with a pod's key when a probe of one of its
// containers changes state: its readiness or its life is at stake.
func WithChangeHandler(f func(podKey string)) Option { return func(m *Manager) { m.onChange = f } }

// WithResultHandler is called with every probe run's kind and result, for
// metrics. It must not block.
func WithResultHandler(f func(kind Kind, result Result)) Option {
	return func(m *Manager) { m.onResult = f }
}

// New returns a manager whose exec probes run through exec.
func New(exec Execer, opts ...Option) *Manager {
	m := &Manager{clock: clock.RealClock{}, log: slog.Default(), onChange: func(string) {}, onResult: func(Kind, Result) {},
		workers: map[workerKey]*worker{}, instances: map[string]*instance{}}
	for _, o := range opts {
		o(m)
	}
	m.prober = newProber(exec, m.clock)
	if m.events == nil {
		m.events = events.NewRecorder(events.DefaultCapacity, m.log, m.clock)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Stop stops every worker and waits for them.
func (m *Manager) Stop() {
	m.cancel()
	m.wg.Wait()
}

func trimID(id string) string { return strings.TrimPrefix(id, "containerd://") }

// Sync starts workers for the probes of the pod's running containers and
// stops those of containers that no longer run. The supervisor calls it
// with every status it publishes; when nothing changed it does nothing.
func (m *Manager) Sync(pod *v1.Pod) {
	key := pod.Namespace + "/" + pod.Name
	// App containers and native sidecars have probes.
	specs := map[string]*v1.Container{}
	for i := range pod.Spec.Containers {
		specs[pod.Spec.Containers[i].Name] = &pod.Spec.Containers[i]
	}
	for i := range pod.Spec.InitContainers {
		if podspec.IsSidecar(&pod.Spec.InitContainers[i]) {
			specs[pod.Spec.InitContainers[i].Name] = &pod.Spec.InitContainers[i]
		}
	}
	running := map[string]bool{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		c := specs[cs.Name]
		if c == nil || cs.State.Running == nil || cs.ContainerID == "" {
			continue
		}
		id := trimID(cs.ContainerID)
		running[id] = true
		inst := m.instances[id]
		if inst == nil {
			inst = &instance{podKey: key, name: c.Name, state: map[Kind]Result{}, last: map[Kind]ProbeStatus{}}
			m.instances[id] = inst
		}
		for _, kind := range []Kind{Startup, Liveness, Readiness} {
			probe := probeOf(c, kind)
			wk := workerKey{id, kind}
			old := m.workers[wk]
			if probe == nil {
				if old != nil {
					m.stopLocked(wk, old)
				}
				delete(inst.state, kind)
				continue
			}
			if old != nil && old.target.host == pod.Status.PodIP && reflect.DeepEqual(old.probe, probe) {
				continue
			}
			if old != nil {
				m.stopLocked(wk, old)
			}
			if _, ok := inst.state[kind]; !ok {
				inst.state[kind] = initial(kind)
			}
			m.startLocked(wk, &worker{
				m: m, podKey: key, kind: kind, probe: probe.DeepCopy(), startedAt: cs.State.Running.StartedAt.Time,
				target: target{host: pod.Status.PodIP, containerID: id, container: c.DeepCopy()}, lastResult: Unknown,
			})
		}
	}
	m.forgetLocked(key, running)
}

// Remove stops every worker of a pod that is gone.
func (m *Manager) Remove(podKey string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetLocked(podKey, nil)
}

// forgetLocked drops the workers and results of a pod's instances that are
// not in keep.
func (m *Manager) forgetLocked(podKey string, keep map[string]bool) {
	for wk, w := range m.workers {
		if w.podKey == podKey && !keep[wk.id] {
			m.stopLocked(wk, w)
		}
	}
	for id, inst := range m.instances {
		if inst.podKey == podKey && !keep[id] {
			delete(m.instances, id)
		}
	}
}

func (m *Manager) startLocked(wk workerKey, w *worker) {
	ctx, cancel := context.WithCancel(m.ctx)
	w.cancel, w.done = cancel, make(chan struct{})
	m.workers[wk] = w
	m.wg.Add(1)
	go func() { // owned by the manager: stopped by stopLocked or Stop
		defer m.wg.Done()
		w.run(ctx)
	}()
}

// stopLocked cancels a worker; it ends on its own, without the lock.
func (m *Manager) stopLocked(wk workerKey, w *worker) {
	w.cancel()
	delete(m.workers, wk)
}

// record notes a probe's run, and reports each failure as an Unhealthy
// event, as the kubelet does.
func (m *Manager) record(w *worker, result Result, output string) {
	m.mu.Lock()
	inst := m.instances[w.target.containerID]
	if inst != nil {
		ps := inst.last[w.kind]
		ps.Container, ps.ContainerID, ps.Probe = inst.name, w.target.containerID, w.kind.String()
		ps.Result, ps.Output, ps.Time = result.String(), output, m.clock.Now()
		if result == Success {
			ps.Output = ""
		}
		inst.last[w.kind] = ps
	}
	m.mu.Unlock()
	m.onResult(w.kind, result)
	if result == Failure && inst != nil {
		m.events.Eventf(events.Warning, "Unhealthy", w.podKey, inst.name, "%s probe failed: %s", w.kind, output)
	}
}

// set records a result that has held for its threshold, condemns the
// container on a liveness or startup failure, and wakes the pod's worker
// when anything changed.
func (m *Manager) set(w *worker, result Result, output string) {
	m.mu.Lock()
	inst := m.instances[w.target.containerID]
	changed := inst != nil && inst.state[w.kind] != result
	if inst != nil {
		inst.state[w.kind] = result
		if result == Failure && w.kind != Readiness && inst.verdict == nil {
			inst.verdict = &Verdict{
				Reason:             fmt.Sprintf("Container %s failed %s probe, will be restarted", inst.name, strings.ToLower(w.kind.String())),
				GracePeriodSeconds: w.probe.TerminationGracePeriodSeconds,
			}
			changed = true
		}
	}
	m.mu.Unlock()
	if changed {
		m.log.Debug("probe changed state", "pod", w.podKey, "container", w.target.containerID, "probe", w.kind.String(), "result", result.String())
		m.onChange(w.podKey)
	}
}

// Ready reports whether a container instance passes its readiness probe;
// without one it is ready once started.
func (m *Manager) Ready(_ *v1.Pod, c *v1.Container, id string) bool {
	if c.ReadinessProbe == nil {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.instances[trimID(id)]
	return inst != nil && inst.state[Readiness] == Success
}

// Started reports whether a container instance passed its startup probe;
// without one it is started once running.
func (m *Manager) Started(_ *v1.Pod, c *v1.Container, id string) bool {
	if c.StartupProbe == nil {
		return true
	}
	return m.startedFor(trimID(id))
}

func (m *Manager) startedFor(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.instances[id]
	if inst == nil {
		return false
	}
	st, has := inst.state[Startup]
	return !has || st == Success
}

// Condemned returns the pod's container instances that a liveness or
// startup probe condemned, by container ID.
func (m *Manager) Condemned(podKey string) map[string]Verdict {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out map[string]Verdict
	for id, inst := range m.instances {
		if inst.podKey == podKey && inst.verdict != nil {
			if out == nil {
				out = map[string]Verdict{}
			}
			out[id] = *inst.verdict
		}
	}
	return out
}

// Probes returns the latest run of every probe of the pod's running
// containers, for the API and podsup describe.
func (m *Manager) Probes(podKey string) []ProbeStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ProbeStatus
	for _, inst := range m.instances {
		if inst.podKey != podKey {
			continue
		}
		for kind, ps := range inst.last {
			ps.State = inst.state[kind].String()
			out = append(out, ps)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Container != out[j].Container {
			return out[i].Container < out[j].Container
		}
		return out[i].Probe < out[j].Probe
	})
	return out
}
