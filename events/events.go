// Package events records what happens to pods that a person should know
// about (Created, Started, Killing, BackOff, Unhealthy, Evicted, ...), as
// kubelet events are: each is logged, kept in a bounded ring for the API, and
// sent to watchers.
package events

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Event types, as Kubernetes names them.
const (
	Normal  = "Normal"
	Warning = "Warning"
)

// Event is one thing that happened to a pod or one of its containers.
type Event struct {
	// Seq numbers the events of a recorder in the order it recorded them,
	// from 1; a repeat that bumps Count takes the next one, as it is news
	// too. A watch resumes after the last Seq it got.
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Pod       string    `json:"pod,omitempty"` // namespace/name
	Container string    `json:"container,omitempty"`
	Message   string    `json:"message"`
	// Count is how many times the same event repeated in a row; repeats
	// update the last event instead of filling the ring.
	Count int `json:"count"`
}

// repeats reports whether e is the same event as last, recorded again.
func (e Event) repeats(last Event) bool {
	return last.Type == e.Type && last.Reason == e.Reason && last.Pod == e.Pod && last.Container == e.Container && last.Message == e.Message
}

// DefaultCapacity is how many events a recorder keeps.
const DefaultCapacity = 1000

// watchBuffer is how many events a watcher may have yet to take before it
// has fallen behind.
const watchBuffer = 64

// ErrFellBehind ends a watch whose watcher did not take its events as fast
// as they were recorded.
var ErrFellBehind = errors.New("the watcher fell behind")

// Recorder keeps the most recent events. Its zero value is not usable; use
// NewRecorder.
type Recorder struct {
	log   *slog.Logger
	clock clock.PassiveClock
	epoch string // see Epoch
	size  int    // how many events the ring keeps

	mu       sync.Mutex
	ring     []Event // oldest first, so by Seq; at most size
	seq      uint64  // the Seq of the newest event
	dropped  uint64  // the Seq of the newest event pushed out of the ring
	watchers map[*Watcher]struct{}
}

// NewRecorder returns a recorder that keeps capacity events.
func NewRecorder(capacity int, log *slog.Logger, clk clock.PassiveClock) *Recorder {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Recorder{log: log, clock: clk, epoch: strconv.FormatUint(rand.Uint64(), 36), size: capacity,
		ring: make([]Event, 0, capacity), watchers: map[*Watcher]struct{}{}}
}

// Epoch names this recorder's numbering of events: a podsup that restarts
// has a new recorder that numbers its events from 1 again, under another
// epoch, so a Seq means something only with its epoch.
func (r *Recorder) Epoch() string { return r.epoch }

// Capacity is how many events the recorder keeps.
func (r *Recorder) Capacity() int { return r.size }

// Eventf records an event. pod is namespace/name; container may be empty.
func (r *Recorder) Eventf(typ, reason, pod, container, format string, args ...any) {
	e := Event{Time: r.clock.Now(), Type: typ, Reason: reason, Pod: pod, Container: container, Message: fmt.Sprintf(format, args...), Count: 1}
	attrs := []any{"reason", reason, "pod", pod}
	if container != "" {
		attrs = append(attrs, "container", container)
	}
	attrs = append(attrs, "message", e.Message)
	if typ == Warning {
		r.log.Warn("event", attrs...)
	} else {
		r.log.Info("event", attrs...)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	if n := len(r.ring); n > 0 && e.repeats(r.ring[n-1]) {
		last := &r.ring[n-1]
		last.Count++
		last.Time = e.Time
		last.Seq = r.seq
		r.notify(*last)
		return
	}
	if len(r.ring) == r.size {
		r.dropped = r.ring[0].Seq
		copy(r.ring, r.ring[1:])
		r.ring = r.ring[:len(r.ring)-1]
	}
	e.Seq = r.seq
	r.ring = append(r.ring, e)
	r.notify(e)
}

// notify sends e to the watchers of its pod. A watcher with no room left
// has fallen behind: rather than drop e, or make podsup wait for it, its
// watch ends with ErrFellBehind, and it may watch again from the last event
// it took. Called with mu held.
func (r *Recorder) notify(e Event) {
	for w := range r.watchers {
		if w.pod != "" && w.pod != e.Pod {
			continue
		}
		select {
		case w.ch <- e:
		default:
			w.end(ErrFellBehind)
		}
	}
}

// List returns the recorded events, oldest first, of one pod (namespace/name)
// or, with pod empty, of all.
func (r *Recorder) List(pod string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs, _ := r.since(pod, 0)
	return evs
}

// since returns the events of pod recorded after the one numbered seq,
// oldest first. complete is false when some of them are no longer kept:
// the ring dropped them, or seq is not of this recorder's numbering. Called
// with mu held.
func (r *Recorder) since(pod string, seq uint64) (evs []Event, complete bool) {
	complete = seq >= r.dropped && seq <= r.seq
	if seq > r.seq {
		seq = 0
	}
	for _, e := range r.ring {
		if e.Seq > seq && (pod == "" || e.Pod == pod) {
			evs = append(evs, e)
		}
	}
	return evs, complete
}

// Watch returns the events of pod (namespace/name, or all with pod empty)
// recorded after the one numbered since, oldest first, and a Watcher of
// those recorded after them. Both are taken under one lock, as the
// apiserver lists and watches from one resourceVersion: no event falls
// between the list and the watch, and none is in both. A since of 0 lists
// every event kept. complete is false when some events after since are no
// longer kept: the ring dropped them, or since is not of this recorder's
// numbering (then every event kept is listed). The caller stops the
// Watcher.
func (r *Recorder) Watch(pod string, since uint64) (evs []Event, w *Watcher, complete bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs, complete = r.since(pod, since)
	w = &Watcher{r: r, pod: pod, after: r.seq, ch: make(chan Event, watchBuffer)}
	r.watchers[w] = struct{}{}
	return evs, w, complete
}

// Watcher receives the events a Recorder records after a Watch.
type Watcher struct {
	r     *Recorder
	pod   string
	after uint64 // the Seq of the newest event when the watch began
	// ch is buffered so that recording never waits for a watcher; it is
	// closed, under r.mu, when the watch ends.
	ch  chan Event
	err error // why the watch ended; written under r.mu before ch is closed
}

// After returns the Seq of the newest event recorded when the watch began:
// the Watch listed the events up to it, and the watcher is sent those
// after it. A watch of one pod that resumes from there has missed none of
// the pod's events, though it got none numbered so.
func (w *Watcher) After() uint64 { return w.after }

// Events returns the watch's events, oldest first. The channel is closed
// when the watch ends, after the events sent before that: by Stop, or
// because the watcher fell behind (see Err).
func (w *Watcher) Events() <-chan Event { return w.ch }

// Err returns ErrFellBehind once the watch ended because the watcher did
// not take its events in time, and nil otherwise.
func (w *Watcher) Err() error {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.err
}

// Stop ends the watch and closes its channel. It may be called more than
// once, and after the watch ended.
func (w *Watcher) Stop() {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	w.end(nil)
}

// end ends the watch for err, unless it has ended. Called with r.mu held.
func (w *Watcher) end(err error) {
	if _, ok := w.r.watchers[w]; !ok {
		return
	}
	delete(w.r.watchers, w)
	w.err = err
	close(w.ch)
}
