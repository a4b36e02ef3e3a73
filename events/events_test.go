package events

import (
	"context"
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
	if got := r.List("default/b"); len(got) != 2 || got[1].Reason != "Killing" {
		t.Errorf("events of default/b: %+v", got)
	}
}

func TestWatch(t *testing.T) {
	r, _ := newTestRecorder(10)
	ctx, cancel := context.WithCancel(context.Background())
	ch := r.Watch(ctx)
	r.Eventf(Normal, "Pulled", "default/a", "app", "pulled")
	select {
	case e := <-ch:
		if e.Reason != "Pulled" {
			t.Errorf("got %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	for range ch { // closed once the watch ends
	}
}
