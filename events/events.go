// Package events records what happens to pods that a person should know
// about (Created, Started, Killing, BackOff, Unhealthy, Evicted, ...), as
// kubelet events are: each is logged, kept in a bounded ring for the API, and
// sent to watchers.
package events

import (
	"context"
	"fmt"
	"log/slog"
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

// DefaultCapacity is how many events a recorder keeps.
const DefaultCapacity = 1000

// Recorder keeps the most recent events. Its zero value is not usable; use
// NewRecorder.
type Recorder struct {
	log   *slog.Logger
	clock clock.PassiveClock

	mu       sync.Mutex
	ring     []Event // oldest first; at most cap(ring)
	watchers map[chan Event]struct{}
}

// NewRecorder returns a recorder that keeps capacity events.
func NewRecorder(capacity int, log *slog.Logger, clk clock.PassiveClock) *Recorder {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Recorder{log: log, clock: clk, ring: make([]Event, 0, capacity), watchers: map[chan Event]struct{}{}}
}

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
	if n := len(r.ring); n > 0 {
		last := &r.ring[n-1]
		if last.Type == e.Type && last.Reason == e.Reason && last.Pod == e.Pod && last.Container == e.Container && last.Message == e.Message {
			last.Count++
			last.Time = e.Time
			e = *last
			r.notify(e)
			return
		}
	}
	if len(r.ring) == cap(r.ring) {
		copy(r.ring, r.ring[1:])
		r.ring = r.ring[:len(r.ring)-1]
	}
	r.ring = append(r.ring, e)
	r.notify(e)
}

// notify sends e to every watcher that has room; a watcher that does not
// keep up misses events rather than slowing podsup down. Called with mu held.
func (r *Recorder) notify(e Event) {
	for ch := range r.watchers {
		select {
		case ch <- e:
		default:
		}
	}
}

// List returns the recorded events, oldest first, of one pod (namespace/name)
// or, with pod empty, of all.
func (r *Recorder) List(pod string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.ring {
		if pod == "" || e.Pod == pod {
			out = append(out, e)
		}
	}
	return out
}

// Watch returns a channel of events recorded from now on, closed when ctx
// ends.
func (r *Recorder) Watch(ctx context.Context) <-chan Event {
	ch := make(chan Event, 64)
	r.mu.Lock()
	r.watchers[ch] = struct{}{}
	r.mu.Unlock()
	go func() { // owned by ctx: it only waits for ctx to end
		<-ctx.Done()
		r.mu.Lock()
		delete(r.watchers, ch)
		close(ch)
		r.mu.Unlock()
	}()
	return ch
}
