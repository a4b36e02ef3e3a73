// Package metrics exposes podsup's Prometheus metrics: pods and containers
// by state, restarts, probe results, pod start latency, sync duration,
// manifest errors, evictions and image pulls. Counters and histograms are
// fed by hooks in the supervisor, the prober and the manifest merger; the
// pod and container gauges are read from the supervisor at scrape time, so
// they can never drift from what /pods says.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/health"
	"github.com/podsup/podsup/manifest"
)

// Metrics holds podsup's collectors. It implements supervisor.Metrics.
type Metrics struct {
	reg   *prometheus.Registry
	clock clock.PassiveClock

	syncDuration     *prometheus.HistogramVec
	startDuration    prometheus.Histogram
	probes           *prometheus.CounterVec
	pulls            *prometheus.CounterVec
	evictions        prometheus.Counter
	manifestErrors   prometheus.Counter
	manifestProblems prometheus.Gauge

	mu       sync.Mutex
	started  map[string]types.UID // pod key -> the UID whose start was observed
	problems map[string]bool      // the manifest problems of the last delta
}

// PodsFunc lists the pods with their status (the supervisor's Pods).
type PodsFunc func() []*v1.Pod

// New returns the metrics, reading pod and container states from pods.
func New(pods PodsFunc, clk clock.PassiveClock) *Metrics {
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		clock: clk,
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "podsup_pod_sync_duration_seconds", Help: "How long one sync of one pod took: observe, plan and act.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"result"}),
		startDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "podsup_pod_start_duration_seconds", Help: "From a manifest first seen to all of its pod's containers running.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600},
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podsup_prober_probe_total", Help: "Probe runs by kind and result.",
		}, []string{"probe_type", "result"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "podsup_image_pulls_total", Help: "Image pulls by result.",
		}, []string{"result"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podsup_evictions_total", Help: "Pods evicted.",
		}),
		manifestErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "podsup_manifest_errors_total", Help: "Manifest problems that appeared: files, URL bodies or pushes refused.",
		}),
		manifestProblems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "podsup_manifest_problems", Help: "Manifest problems the sources report now.",
		}),
		started:  map[string]types.UID{},
		problems: map[string]bool{},
	}
	m.reg.MustRegister(m.syncDuration, m.startDuration, m.probes, m.pulls, m.evictions, m.manifestErrors, m.manifestProblems,
		podCollector{pods}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4})
}

// Registry is where the metrics are registered, for tests and for other
// packages' collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SyncDone records one pod sync.
func (m *Metrics) SyncDone(d time.Duration, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.syncDuration.WithLabelValues(result).Observe(d.Seconds())
}

// ImagePull records one image pull.
func (m *Metrics) ImagePull(err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	m.pulls.WithLabelValues(result).Inc()
}

// Evicted records one eviction.
func (m *Metrics) Evicted() { m.evictions.Inc() }

// ProbeResult records one probe run.
func (m *Metrics) ProbeResult(kind health.Kind, result health.Result) {
	m.probes.WithLabelValues(kind.String(), result.String()).Inc()
}

// ManifestProblems records the sources' current problems; each that was not
// there before counts as an error.
func (m *Metrics) ManifestProblems(problems []manifest.Problem) {
	now := make(map[string]bool, len(problems))
	for _, p := range problems {
		now[p.Origin+"\x00"+p.Err.Error()] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range now {
		if !m.problems[k] {
			m.manifestErrors.Inc()
		}
	}
	m.problems = now
	m.manifestProblems.Set(float64(len(problems)))
}

// PodStatus is a supervisor status listener: the first time all of a pod
// UID's containers run, it records how long that took from the manifest
// being seen. A pod adopted from an earlier podsup, whose containers were
// running before this podsup saw the manifest, is not a start and is not
// recorded.
func (m *Metrics) PodStatus(key string, pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pod == nil {
		delete(m.started, key)
		return
	}
	if m.started[key] == pod.UID || len(pod.Status.ContainerStatuses) < len(pod.Spec.Containers) {
		return
	}
	seen, err := time.Parse(time.RFC3339Nano, pod.Annotations[manifest.AnnotationSeen])
	if err != nil {
		return
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return
		}
		if cs.State.Running.StartedAt.Time.Before(seen.Truncate(time.Second)) {
			m.started[key] = pod.UID // adopted, not started
			return
		}
	}
	m.started[key] = pod.UID
	m.startDuration.Observe(m.clock.Since(seen).Seconds())
}

// podCollector reports pods by phase, containers by state and restarts,
// read from the supervisor when scraped.
type podCollector struct{ pods PodsFunc }

var (
	podsDesc       = prometheus.NewDesc("podsup_pods", "Pods by phase.", []string{"phase"}, nil)
	containersDesc = prometheus.NewDesc("podsup_containers", "Containers by state.", []string{"state"}, nil)
	readyDesc      = prometheus.NewDesc("podsup_pods_ready", "Pods whose Ready condition is true.", nil, nil)
	restartsDesc   = prometheus.NewDesc("podsup_container_restarts_total", "Restarts of a container of the current pod instance.",
		[]string{"namespace", "pod", "container"}, nil)
)

func (podCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- podsDesc
	ch <- containersDesc
	ch <- readyDesc
	ch <- restartsDesc
}

func (c podCollector) Collect(ch chan<- prometheus.Metric) {
	phases := map[v1.PodPhase]int{v1.PodPending: 0, v1.PodRunning: 0, v1.PodSucceeded: 0, v1.PodFailed: 0}
	states := map[string]int{"running": 0, "waiting": 0, "terminated": 0}
	ready := 0
	for _, p := range c.pods() {
		phase := p.Status.Phase
		if phase == "" {
			phase = v1.PodPending
		}
		phases[phase]++
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
				ready++
			}
		}
		for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
			for _, cs := range list {
				switch {
				case cs.State.Running != nil:
					states["running"]++
				case cs.State.Terminated != nil:
					states["terminated"]++
				default:
					states["waiting"]++
				}
				ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(cs.RestartCount), p.Namespace, p.Name, cs.Name)
			}
		}
	}
	for phase, n := range phases {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(n), string(phase))
	}
	for state, n := range states {
		ch <- prometheus.MustNewConstMetric(containersDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, float64(ready))
}
