package events

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func newTestRecorder(capacity int) (*Recorder, *clocktesting.FakePassiveClock) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	return NewRecorder(capacity, slog.New(slog.NewTextHandler(io.Discard, nil)), clk), clk
}

func TestRingAndRepeats(t *testing.T) {
	r, clk := newTestRecorder(3)
	r.Eventf(Normal, "Started", "default/a", "app", "started")
	clk.SetTime(clk.Now().Add(time.Second))
	r.Eventf(Warning, "BackOff", "default/a", "app", "back-off %ds", 10)
	r.Eventf(Warning, "BackOff", "default/a", "app", "back-off %ds", 10)
	r.Eventf(Normal, "Started", "default/b", "app", "started")
	r.Eventf(Normal, "Killing", "default/b", "app", "stopping")
	all := r.List("")
	if len(all) != 3 {
		t.Fatalf("%d events kept, want the capacity 3", len(all))
	}
	if all[0].Reason != "BackOff" || all[0].Count != 2 {
		t.Errorf("oldest kept event %+v, want BackOff counted twice", all[0])
	}
	// The repeat took the next number: the numbers go up with the ring.
	if all[0].Seq != 3 || all[1].Seq != 4 || all[2].Seq != 5 {
		t.Errorf("numbers %d %d %d, want 3 4 5", all[0].Seq, all[1].Seq, all[2].Seq)
	}
	if got := r.List("default/b"); len(got) != 2 || got[1].Reason != "Killing" {
		t.Errorf("events of default/b: %+v", got)
	}
}

// reasons are the reasons of events, in order.
func reasons(evs []Event) string {
	var s string
	for _, e := range evs {
		s += e.Reason + " "
	}
	return s
}

// buffered takes what a watcher has been sent so far, without waiting: a
// send happens under the recorder's lock, before Eventf returns.
func buffered(w *Watcher) (evs []Event, closed bool) {
	for {
		select {
		case e, ok := <-w.Events():
			if !ok {
				return evs, true
			}
			evs = append(evs, e)
		default:
			return evs, false
		}
	}
}

// TestWatchListsThenWatchesFromOnePoint: the events before a Watch are
// listed, those after are sent, and none is both or neither.
func TestWatchListsThenWatchesFromOnePoint(t *testing.T) {
	r, _ := newTestRecorder(10)
	r.Eventf(Normal, "Pulled", "default/a", "app", "pulled")
	r.Eventf(Normal, "Created", "default/b", "app", "created")
	listed, w, complete := r.Watch("", 0)
	defer w.Stop()
	if reasons(listed) != "Pulled Created " || !complete || w.After() != 2 {
		t.Errorf("listed %q (complete %v) up to %d, want Pulled Created up to 2", reasons(listed), complete, w.After())
	}
	r.Eventf(Normal, "Started", "default/a", "app", "started")
	r.Eventf(Normal, "Started", "default/a", "app", "started")
	sent, closed := buffered(w)
	if reasons(sent) != "Started Started " || closed {
		t.Fatalf("sent %q (closed %v), want Started twice", reasons(sent), closed)
	}
	if sent[1].Count != 2 || sent[1].Seq != 4 {
		t.Errorf("the repeat was sent as %+v, want count 2 and number 4", sent[1])
	}
}

// TestWatchWhileRecording: a watch taken while another goroutine records
// gets every event exactly once, in order, whichever way the two
// interleave, and however far the reader falls behind.
func TestWatchWhileRecording(t *testing.T) {
	const n = 500
	r, _ := newTestRecorder(n)
	done := make(chan struct{})
	go func() { // owned by the test: it ends after n events
		defer close(done)
		for i := range n {
			r.Eventf(Normal, "Step", "default/a", "app", "step %d", i)
		}
	}()
	var got []Event
	last := func() uint64 {
		if len(got) == 0 {
			return 0
		}
		return got[len(got)-1].Seq
	}
	for last() < n {
		evs, w, complete := r.Watch("", last())
		if !complete {
			t.Fatal("the ring holds every event, yet the watch says some were lost")
		}
		got = append(got, evs...)
		if last() == n {
			w.Stop()
			break
		}
		for e := range w.Events() {
			got = append(got, e)
			if e.Seq == n {
				w.Stop()
			}
		}
		if err := w.Err(); last() < n && !errors.Is(err, ErrFellBehind) {
			t.Fatalf("the watch ended with %v before the last event", err)
		}
	}
	<-done
	if len(got) != n {
		t.Fatalf("got %d events, want %d", len(got), n)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Message != fmt.Sprintf("step %d", i) {
			t.Fatalf("event %d is %+v", i, e)
		}
	}
}

// TestWatcherFallsBehind: a watcher that does not take its events has its
// watch ended, not its events dropped, and recording never waits for it;
// it resumes from the ring without a gap.
func TestWatcherFallsBehind(t *testing.T) {
	r, _ := newTestRecorder(100)
	_, w, _ := r.Watch("", 0)
	for i := range watchBuffer + 2 {
		r.Eventf(Normal, "Step", "default/a", "app", "step %d", i)
	}
	sent, closed := buffered(w)
	if len(sent) != watchBuffer || !closed {
		t.Fatalf("%d events sent (closed %v), want %d and the watch ended", len(sent), closed, watchBuffer)
	}
	if err := w.Err(); !errors.Is(err, ErrFellBehind) {
		t.Errorf("the watch ended with %v, want ErrFellBehind", err)
	}
	w.Stop() // after the end: nothing to do
	rest, w, complete := r.Watch("", sent[len(sent)-1].Seq)
	defer w.Stop()
	if len(rest) != 2 || rest[0].Seq != watchBuffer+1 || !complete {
		t.Errorf("resumed with %+v (complete %v), want the 2 events the watch did not send", rest, complete)
	}
}

// TestWatchAfterTheRingDropped: a watch that resumes after events the ring
// no longer holds says so and starts at the oldest it holds.
func TestWatchAfterTheRingDropped(t *testing.T) {
	r, _ := newTestRecorder(3)
	for i := range 5 {
		r.Eventf(Normal, fmt.Sprint("E", i+1), "default/a", "app", "")
	}
	tests := []struct {
		name         string
		since        uint64
		want         string
		wantComplete bool
	}{
		{name: "from an event dropped", since: 1, want: "E3 E4 E5 ", wantComplete: false},
		{name: "from the last event dropped", since: 2, want: "E3 E4 E5 ", wantComplete: true},
		{name: "from one kept", since: 4, want: "E5 ", wantComplete: true},
		{name: "from the newest", since: 5, want: "", wantComplete: true},
		{name: "from another recorder's numbering", since: 9, want: "E3 E4 E5 ", wantComplete: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, w, complete := r.Watch("", tc.since)
			w.Stop()
			if reasons(evs) != tc.want || complete != tc.wantComplete {
				t.Errorf("listed %q, complete %v; want %q, %v", reasons(evs), complete, tc.want, tc.wantComplete)
			}
		})
	}
}

// TestWatchOfAPod: a watcher of one pod is sent its events only, and other
// pods' events do not fill its buffer.
func TestWatchOfAPod(t *testing.T) {
	r, _ := newTestRecorder(10)
	r.Eventf(Normal, "Pulled", "default/a", "app", "pulled")
	r.Eventf(Normal, "Pulled", "default/b", "app", "pulled")
	listed, w, _ := r.Watch("default/b", 0)
	defer w.Stop()
	for i := range 2 * watchBuffer {
		r.Eventf(Normal, "Step", "default/a", "app", "step %d", i)
	}
	r.Eventf(Normal, "Started", "default/b", "app", "started")
	sent, closed := buffered(w)
	if len(listed) != 1 || listed[0].Pod != "default/b" || reasons(sent) != "Started " || closed {
		t.Errorf("listed %+v, sent %+v (closed %v); want default/b's events only", listed, sent, closed)
	}
	// The watch listed all of default/b's events up to the newest of any
	// pod: it resumes from there.
	if w.After() != 2 {
		t.Errorf("the watch began after event %d, want 2", w.After())
	}
}

func TestStop(t *testing.T) {
	r, _ := newTestRecorder(10)
	_, w, _ := r.Watch("", 0)
	w.Stop()
	w.Stop()
	r.Eventf(Normal, "Pulled", "default/a", "app", "pulled") // sends to no one
	if sent, closed := buffered(w); len(sent) != 0 || !closed || w.Err() != nil {
		t.Errorf("a stopped watch: sent %+v, closed %v, err %v", sent, closed, w.Err())
	}
}

func TestEpochs(t *testing.T) {
	a, _ := newTestRecorder(1)
	b, _ := newTestRecorder(1)
	if a.Epoch() == "" || a.Epoch() == b.Epoch() {
		t.Errorf("epochs %q and %q, want two different ones", a.Epoch(), b.Epoch())
	}
}
