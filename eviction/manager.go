package eviction

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/qos"
)

// Defaults of the eviction flags, the kubelet's.
const (
	DefaultTransitionPeriod = 5 * time.Minute
	DefaultHousekeeping     = 10 * time.Second
)

// immediateGrace is the grace period of a pod evicted for a hard
// threshold, as the kubelet's: one second.
const immediateGrace = int64(1)

// KillPodFunc evicts a pod: it stops within grace, is reported Failed with
// reason Evicted and the message, and runs again once readmit says so.
type KillPodFunc func(key, message string, grace *int64, readmit func(now time.Time) bool)

// ActivePodsFunc lists the pods that may run: the supervisor's.
type ActivePodsFunc func() []*v1.Pod

// ReclaimFunc frees what it can of a resource without touching a running
// pod: dead containers' logs, unused images.
type ReclaimFunc func(ctx context.Context) error

// Manager watches the node's signals, keeps its pressure conditions, and
// evicts pods when a threshold is met.
type Manager struct {
	cfg     Config
	stats   StatsFunc
	pods    ActivePodsFunc
	kill    KillPodFunc
	reclaim map[Resource][]ReclaimFunc
	clock   clock.WithTicker
	log     *slog.Logger
	events  *events.Recorder
	notify  func()

	mu            sync.Mutex
	firstMet      map[int]time.Time                  // by threshold index: met without a break since
	lastMet       map[v1.NodeConditionType]time.Time // the last time a threshold of the condition was met
	conditions    map[v1.NodeConditionType]v1.NodeCondition
	lastStats     *Stats
	lastStatsErr  string
	metMessages   map[v1.NodeConditionType]string // what met the condition's thresholds, for its message
	lastNoVictims time.Time
}

// Option configures a Manager.
type Option func(*Manager)

// WithReclaim adds a way to free a resource before pods are evicted for it.
func WithReclaim(r Resource, f ReclaimFunc) Option {
	return func(m *Manager) { m.reclaim[r] = append(m.reclaim[r], f) }
}

// WithClock sets the clock.
func WithClock(c clock.WithTicker) Option { return func(m *Manager) { m.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithEvents sets where the node's pressure events go.
func WithEvents(r *events.Recorder) Option { return func(m *Manager) { m.events = r } }

// WithConditionHandler is called, without locks held, when a pressure
// condition changes.
func WithConditionHandler(f func()) Option { return func(m *Manager) { m.notify = f } }

// New returns a manager applying cfg to the node stats measures.
func New(cfg Config, stats StatsFunc, pods ActivePodsFunc, kill KillPodFunc, opts ...Option) *Manager {
	m := &Manager{cfg: cfg, stats: stats, pods: pods, kill: kill, reclaim: map[Resource][]ReclaimFunc{},
		clock: clock.RealClock{}, log: slog.Default(), notify: func() {},
		firstMet: map[int]time.Time{}, lastMet: map[v1.NodeConditionType]time.Time{},
		conditions: map[v1.NodeConditionType]v1.NodeCondition{}, metMessages: map[v1.NodeConditionType]string{}}
	for _, o := range opts {
		o(m)
	}
	if m.cfg.Housekeeping <= 0 {
		m.cfg.Housekeeping = DefaultHousekeeping
	}
	if m.events == nil {
		m.events = events.NewRecorder(events.DefaultCapacity, m.log, m.clock)
	}
	now := m.clock.Now()
	for _, t := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
		m.conditions[t] = condition(t, false, "", now)
	}
	return m
}

// Run measures the node every housekeeping interval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := m.clock.NewTicker(m.cfg.Housekeeping)
	defer t.Stop()
	for {
		m.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// step is one housekeeping pass: measure, update the conditions, and if a
// threshold has held for its grace period, reclaim and then evict one pod.
func (m *Manager) step(ctx context.Context) {
	st, err := m.stats(ctx)
	if err != nil {
		m.mu.Lock()
		repeat := m.lastStatsErr == err.Error()
		m.lastStatsErr = err.Error()
		m.mu.Unlock()
		if !repeat && ctx.Err() == nil {
			m.log.Warn("cannot measure the node; eviction waits", "err", err)
		}
		return
	}
	now := m.clock.Now()
	due, changed := m.observe(st, now)
	if changed {
		m.notify()
	}
	if len(due) == 0 {
		return
	}
	t := due[0]
	res := resourceOf(t.Signal)
	m.events.Eventf(events.Warning, "EvictionThresholdMet", "", "", "Attempting to reclaim %s: %s", res, describe(t, st.Signals[t.Signal]))
	if funcs := m.reclaim[res]; len(funcs) > 0 {
		for _, f := range funcs {
			if err := f(ctx); err != nil {
				m.log.Warn("reclaiming failed", "resource", res, "err", err)
			}
		}
		if after, err := m.stats(ctx); err == nil {
			st = after
			if !m.stillMet(t, st) {
				m.log.Info("reclaimed enough without evicting a pod", "signal", t.Signal, "available", quantity(st.Signals[t.Signal].Available))
				return
			}
		}
	}
	m.evictOne(t, st, now)
}

// observe updates the thresholds met and the conditions from a
// measurement; it returns the thresholds due for action, most urgent
// first, and whether a condition changed.
func (m *Manager) observe(st *Stats, now time.Time) ([]Threshold, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastStats = st
	messages := map[v1.NodeConditionType][]string{}
	var due []Threshold
	for i, t := range m.cfg.Thresholds {
		a, ok := st.Signals[t.Signal]
		if !ok {
			continue
		}
		first, wasMet := m.firstMet[i]
		if !met(t, a, wasMet) {
			delete(m.firstMet, i)
			continue
		}
		if !wasMet {
			first = now
			m.firstMet[i] = now
		}
		cond := conditionOf(resourceOf(t.Signal))
		m.lastMet[cond] = now
		messages[cond] = append(messages[cond], describe(t, a))
		if now.Sub(first) >= t.GracePeriod {
			due = append(due, t)
		}
	}
	order := map[Signal]int{}
	for i, s := range signals {
		order[s] = i
	}
	sort.SliceStable(due, func(i, j int) bool { return order[due[i].Signal] < order[due[j].Signal] })

	changed := false
	for typ, old := range m.conditions {
		last, seen := m.lastMet[typ]
		pressure := seen && now.Sub(last) < m.cfg.TransitionPeriod
		if msgs := messages[typ]; len(msgs) > 0 {
			m.metMessages[typ] = strings.Join(msgs, ", ")
		}
		if pressure == (old.Status == v1.ConditionTrue) {
			continue
		}
		m.conditions[typ] = condition(typ, pressure, m.metMessages[typ], now)
		changed = true
		if pressure {
			m.log.Warn("node under pressure", "condition", typ, "because", m.metMessages[typ])
			m.events.Eventf(events.Warning, "NodeHas"+string(typ), "", "", "Node has %s: %s", typ, m.metMessages[typ])
		} else {
			m.log.Info("node pressure over", "condition", typ, "transition-period", m.cfg.TransitionPeriod)
			m.events.Eventf(events.Normal, "NodeHasNo"+string(typ), "", "", "Node has no %s", typ)
		}
	}
	return due, changed
}

// stillMet reports whether t, or another threshold on the same resource,
// is met after reclaiming.
func (m *Manager) stillMet(t Threshold, st *Stats) bool {
	res := resourceOf(t.Signal)
	for _, o := range m.cfg.Thresholds {
		if resourceOf(o.Signal) != res {
			continue
		}
		if a, ok := st.Signals[o.Signal]; ok && met(o, a, true) {
			return true
		}
	}
	return false
}

// evictOne evicts the first pod in rank for t's resource.
func (m *Manager) evictOne(t Threshold, st *Stats, now time.Time) {
	res := resourceOf(t.Signal)
	var cands []candidate
	for _, p := range m.pods() {
		if qos.IsCritical(p) || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		key := p.Namespace + "/" + p.Name
		cands = append(cands, candidate{pod: p, key: key, usage: st.Pods[key]})
	}
	if len(cands) == 0 {
		if now.Sub(m.lastNoVictims) >= time.Minute {
			m.lastNoVictims = now
			m.log.Warn("threshold met but no pod may be evicted: the others are critical", "threshold", t.String())
		}
		return
	}
	rank(cands, res)
	victim := cands[0]
	grace := immediateGrace
	if t.Soft {
		// A negative maximum defers to the pod's own, as the kubelet's.
		grace = podGrace(victim.pod)
		if m.cfg.MaxPodGracePeriod >= 0 {
			grace = min(m.cfg.MaxPodGracePeriod, grace)
		}
	}
	used, requested := usageOf(victim, res)
	message := fmt.Sprintf("The node was low on resource: %s. Threshold quantity: %s, available: %s (signal %s). The pod was using %s, request is %s.",
		resourceName(t.Signal), t.Value, quantity(st.Signals[t.Signal].Available), t.Signal, quantity(used), quantity(requested))
	cond := conditionOf(res)
	m.log.Warn("evicting a pod", "pod", victim.key, "signal", t.Signal, "threshold", t.String(),
		"available", quantity(st.Signals[t.Signal].Available), "used", quantity(used), "grace", grace)
	m.kill(victim.key, message, &grace, func(time.Time) bool { return !m.Pressure(cond) })
}

func podGrace(p *v1.Pod) int64 {
	if p.Spec.TerminationGracePeriodSeconds != nil {
		return *p.Spec.TerminationGracePeriodSeconds
	}
	return v1.DefaultTerminationGracePeriodSeconds
}

// Pressure reports whether a pressure condition holds.
func (m *Manager) Pressure(t v1.NodeConditionType) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conditions[t].Status == v1.ConditionTrue
}

// Conditions are the node's pressure conditions, for the API and the Node.
func (m *Manager) Conditions() []v1.NodeCondition {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]v1.NodeCondition, 0, len(m.conditions))
	for _, t := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
		out = append(out, m.conditions[t])
	}
	return out
}

// Admit decides whether a pod may start now: under memory pressure every
// pod but BestEffort ones; under disk or PID pressure only critical pods.
// A refused pod waits with reason and message.
func (m *Manager) Admit(pod *v1.Pod) (ok bool, reason, message string) {
	var under []string
	for _, c := range m.Conditions() {
		if c.Status == v1.ConditionTrue {
			under = append(under, string(c.Type))
		}
	}
	if len(under) == 0 || qos.IsCritical(pod) {
		return true, "", ""
	}
	if len(under) == 1 && under[0] == string(v1.NodeMemoryPressure) && qos.Class(pod) != v1.PodQOSBestEffort {
		return true, "", ""
	}
	return false, "Node" + under[0], fmt.Sprintf("The node has condition %v: the pod waits for it to clear (only critical pods start under it).", under)
}

// condition is one pressure condition, as the kubelet words it.
func condition(t v1.NodeConditionType, pressure bool, because string, now time.Time) v1.NodeCondition {
	what := map[v1.NodeConditionType]string{v1.NodeMemoryPressure: "Memory", v1.NodeDiskPressure: "Disk", v1.NodePIDPressure: "PID"}[t]
	c := v1.NodeCondition{Type: t, Status: v1.ConditionFalse, LastHeartbeatTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now),
		Reason: "PodsupHasSufficient" + what, Message: "podsup has sufficient " + strings.ToLower(what) + " available"}
	if t == v1.NodeDiskPressure {
		c.Reason, c.Message = "PodsupHasNoDiskPressure", "podsup has no disk pressure"
	}
	if pressure {
		c.Status = v1.ConditionTrue
		c.Reason, c.Message = "PodsupHasInsufficient"+what, "podsup has insufficient "+strings.ToLower(what)+" available: "+because
		if t == v1.NodeDiskPressure {
			c.Reason, c.Message = "PodsupHasDiskPressure", "podsup has disk pressure: "+because
		}
	}
	return c
}

// describe is a met threshold with what is left: memory.available 52Mi < 100Mi.
func describe(t Threshold, a Amount) string {
	return fmt.Sprintf("%s %s < %s", t.Signal, quantity(a.Available), t.Value)
}

// quantity prints a byte or count amount compactly.
func quantity(n uint64) string {
	return resource.NewQuantity(int64(min(n, 1<<62)), resource.BinarySI).String()
}
