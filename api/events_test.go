package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/api/apitest"
	"github.com/podsup/podsup/events"
)

// streamWriter is the ResponseWriter of a watch: its output can be waited
// on, and a test can stall it, as a client that stops reading does.
type streamWriter struct {
	*apitest.Output
	header http.Header

	mu      sync.Mutex
	stalled chan struct{} // closed when a Write is held; nil when none is to be
	release chan struct{} // closed to let a held Write go on
}

func newStreamWriter() *streamWriter {
	return &streamWriter{Output: apitest.NewOutput(), header: http.Header{}}
}

func (s *streamWriter) Header() http.Header { return s.header }
func (s *streamWriter) WriteHeader(int)     {}
func (s *streamWriter) Flush()              {}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	stalled, release := s.stalled, s.release
	s.stalled = nil
	s.mu.Unlock()
	if stalled != nil {
		close(stalled)
		<-release
	}
	return s.Output.Write(p)
}

// stall holds the next Write until release is closed; stalled is closed
// once that Write is held.
func (s *streamWriter) stall() (stalled <-chan struct{}, release chan<- struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalled, s.release = make(chan struct{}), make(chan struct{})
	return s.stalled, s.release
}

// watchLine is a line of a watch: an event, or a Status in place of some
// (its reason and message are the Event's).
type watchLine struct {
	Kind string `json:"kind"`
	Code int    `json:"code"`
	events.Event
}

func (l watchLine) String() string {
	switch l.Kind {
	case "Bookmark":
		return fmt.Sprintf("Bookmark %d", l.Seq)
	case "Status":
		return fmt.Sprintf("Status %d %s", l.Code, l.Reason)
	}
	return fmt.Sprintf("%d %s", l.Seq, l.Reason)
}

// watch runs a watch of the events with query on d until the test stops
// it, and returns its lines.
func watch(t *testing.T, d Deps, query string) (out *streamWriter, stop func() []watchLine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/events?watch=true&"+query, nil).WithContext(ctx)
	out = newStreamWriter()
	done := make(chan struct{})
	go func() { // owned by stop, or by the test's cleanup
		defer close(done)
		FullHandler(d).ServeHTTP(out, req)
	}()
	stopped := func() { cancel(); <-done }
	t.Cleanup(stopped)
	return out, func() []watchLine {
		stopped()
		var lines []watchLine
		for _, text := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var l watchLine
			if err := json.Unmarshal([]byte(text), &l); err != nil {
				t.Fatalf("line %q: %v", text, err)
			}
			lines = append(lines, l)
		}
		return lines
	}
}

func recorder(capacity int) *events.Recorder {
	return events.NewRecorder(capacity, slog.New(slog.DiscardHandler), clocktesting.NewFakePassiveClock(time.Unix(1e9, 0)))
}

// TestEventsWatch: a watch sends the events kept, or those after since,
// then the new ones, each once; a Status says when some are no longer
// kept.
func TestEventsWatch(t *testing.T) {
	other := recorder(1)
	tests := []struct {
		name  string
		query func(epoch string) string
		want  string // lines, as watchLine prints them
		lost  string // what a Status says
	}{
		{name: "all", query: func(string) string { return "" },
			want: "3 E3|4 E4|5 E5|6 E6|7 Last"},
		{name: "of a pod", query: func(string) string { return "pod=default/web-node1" },
			want: "3 E3|5 E5|7 Last"},
		{name: "of a pod, with bookmarks", query: func(string) string { return "pod=default/web-node1&allowWatchBookmarks=true" },
			want: "3 E3|5 E5|Bookmark 6|7 Last"},
		{name: "after since", query: func(epoch string) string { return "since=4&epoch=" + epoch },
			want: "5 E5|6 E6|7 Last"},
		{name: "after since, of a pod", query: func(epoch string) string { return "pod=default/web-node1&since=3&epoch=" + epoch },
			want: "5 E5|7 Last"},
		{name: "since, without an epoch", query: func(string) string { return "since=5" },
			want: "6 E6|7 Last"},
		{name: "after events the ring dropped", query: func(epoch string) string { return "since=1&epoch=" + epoch },
			want: "Status 410 Expired|3 E3|4 E4|5 E5|6 E6|7 Last", lost: "after event 1 are no longer kept (podsup keeps the last 4)"},
		{name: "after none, with events dropped since", query: func(epoch string) string { return "since=0&epoch=" + epoch },
			want: "Status 410 Expired|3 E3|4 E4|5 E5|6 E6|7 Last", lost: "after event 0 are no longer kept"},
		{name: "after the last event dropped", query: func(epoch string) string { return "since=2&epoch=" + epoch },
			want: "3 E3|4 E4|5 E5|6 E6|7 Last"},
		{name: "from a podsup that restarted", query: func(string) string { return "since=5&epoch=" + other.Epoch() },
			want: "Status 410 Expired|3 E3|4 E4|5 E5|6 E6|7 Last", lost: "podsup restarted"},
		{name: "since from the future, without an epoch", query: func(string) string { return "since=99" },
			want: "Status 410 Expired|3 E3|4 E4|5 E5|6 E6|7 Last", lost: "after event 99 are no longer kept"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDeps(t)
			d.Events = recorder(4)
			for i := 1; i <= 6; i++ {
				pod := "default/web-node1"
				if i%2 == 0 {
					pod = "default/db-node1"
				}
				d.Events.Eventf(events.Normal, fmt.Sprint("E", i), pod, "app", "event %d", i)
			}
			out, stop := watch(t, d, tc.query(d.Events.Epoch()))
			// Once the watch has written a line, it has listed what it
			// sends first: an event recorded now comes after those.
			out.WaitFor(t, "}\n")
			d.Events.Eventf(events.Normal, "Last", "default/web-node1", "app", "the last event")
			out.WaitFor(t, "the last event")
			lines := stop()
			var got []string
			for _, l := range lines {
				got = append(got, l.String())
				if l.Kind == "Status" && !strings.Contains(l.Message, tc.lost) {
					t.Errorf("the Status says %q, want %q", l.Message, tc.lost)
				}
			}
			if strings.Join(got, "|") != tc.want {
				t.Errorf("the watch sent\n%s\nwant\n%s", strings.Join(got, "|"), tc.want)
			}
			if e := out.Header().Get(EventsEpochHeader); e != d.Events.Epoch() {
				t.Errorf("epoch header %q, want the recorder's %q", e, d.Events.Epoch())
			}
		})
	}
}

// TestEventsWatchOfASlowClient: a client that stops reading while many
// events are recorded gets them all, each once and in order, when it reads
// again; when the ring has dropped some by then, a Status says so in their
// place.
func TestEventsWatchOfASlowClient(t *testing.T) {
	const burst = 100 // more than a watcher's buffer
	tests := []struct {
		name     string
		capacity int
		lost     bool
	}{
		{name: "the ring holds what it missed", capacity: 2 * burst},
		{name: "the ring dropped some of it", capacity: 10, lost: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDeps(t)
			d.Events = recorder(tc.capacity)
			d.Events.Eventf(events.Normal, "Before", "default/web-node1", "app", "before")
			out, stop := watch(t, d, "")
			out.WaitFor(t, `"before"`)
			stalled, release := out.stall()
			d.Events.Eventf(events.Normal, "First", "default/web-node1", "app", "first")
			apitest.Await(t, stalled, "the watch to write the first event") // it took First from its watcher
			for i := range burst {
				d.Events.Eventf(events.Normal, "Step", "default/web-node1", "app", "step %d", i)
			}
			close(release)
			d.Events.Eventf(events.Normal, "Last", "default/web-node1", "app", "the last event")
			out.WaitFor(t, "the last event")
			lines := stop()

			var seq uint64
			statuses := 0
			for i, l := range lines {
				if l.Kind == "Status" {
					statuses++
					if l.Code != http.StatusGone || !strings.Contains(l.Message, "no longer kept") {
						t.Errorf("line %d is %+v, want a 410 that says events are no longer kept", i, l)
					}
					continue
				}
				// Without a Status, the numbers follow each other; after
				// one, they only go up.
				if l.Seq <= seq || l.Seq != seq+1 && statuses == 0 {
					t.Fatalf("line %d is event %d after event %d:\n%s", i, l.Seq, seq, out.String())
				}
				seq = l.Seq
			}
			if last := lines[len(lines)-1]; last.Reason != "Last" {
				t.Errorf("the last line is %+v, want the last event", last)
			}
			if want := map[bool]int{false: 0, true: 1}[tc.lost]; statuses != want {
				t.Errorf("%d Status lines, want %d:\n%s", statuses, want, out.String())
			}
		})
	}
}
