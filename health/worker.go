package health

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Kind is a kind of probe.
type Kind int

// The kinds of probe.
const (
	Liveness Kind = iota
	Readiness
	Startup
)

func (k Kind) String() string { return [...]string{"Liveness", "Readiness", "Startup"}[k] }

// probeOf returns a container's probe of a kind, or nil.
func probeOf(c *v1.Container, k Kind) *v1.Probe {
	switch k {
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	}
	return c.StartupProbe
}

// worker probes one container instance with one probe. Its state belongs
// to its goroutine; results go to the manager.
type worker struct {
	m         *Manager
	podKey    string
	kind      Kind
	probe     *v1.Probe
	target    target
	startedAt time.Time

	cancel context.CancelFunc
	done   chan struct{}

	lastResult Result
	resultRun  int
	onHold     bool // the container was condemned; nothing more to probe
}

// initial is a probe's result before it has run: a container is not ready
// and not started until a probe says so, and alive until one says it is not.
func initial(k Kind) Result {
	if k == Liveness {
		return Success
	}
	return Failure
}

// run probes every period until the worker is stopped. The first probe
// comes after initialDelaySeconds.
func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	period := time.Duration(w.probe.PeriodSeconds) * time.Second
	first := w.startedAt.Add(time.Duration(w.probe.InitialDelaySeconds) * time.Second).Sub(w.m.clock.Now())
	timer := w.m.clock.NewTimer(max(first, 0))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		}
		if !w.step(ctx) {
			return
		}
		timer.Reset(period)
	}
}

// step runs the probe once and records the result once it has held for the
// probe's threshold. It reports whether the worker should keep probing.
func (w *worker) step(ctx context.Context) bool {
	if w.onHold {
		return false
	}
	if w.kind != Startup && !w.m.startedFor(w.target.containerID) {
		return true // held back until the startup probe succeeds
	}
	if w.kind == Startup && w.m.startedFor(w.target.containerID) {
		return false // done: a startup probe runs until it first succeeds
	}
	timeout := time.Duration(w.probe.TimeoutSeconds) * time.Second
	result, output := w.m.prober.run(ctx, &w.probe.ProbeHandler, w.target, timeout)
	if ctx.Err() != nil || result == Unknown {
		return ctx.Err() == nil
	}
	w.m.record(w, result, output)
	if result == w.lastResult {
		w.resultRun++
	} else {
		w.lastResult, w.resultRun = result, 1
	}
	if (result == Failure && w.resultRun < int(w.probe.FailureThreshold)) ||
		(result == Success && w.resultRun < int(w.probe.SuccessThreshold)) {
		return true
	}
	w.m.set(w, result, output)
	if result == Failure && w.kind != Readiness {
		// The container is condemned; its successor gets a new worker.
		w.onHold = true
		return false
	}
	return true
}
