package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/podsup/podsup/api/apitest"
	"github.com/podsup/podsup/events"
)

func TestEvents(t *testing.T) {
	fx := newFixture(t)
	fx.pods.Set(staticPod("default", "web", "main"), staticPod("kube-system", "dns", "main"))
	fx.events.Eventf(events.Normal, "Started", "default/web-node1", "main", "Started container main")
	fx.events.Eventf(events.Warning, "BackOff", "kube-system/dns-node1", "main", "Back-off restarting failed container main")
	fx.events.Eventf(events.Warning, "BackOff", "kube-system/dns-node1", "main", "Back-off restarting failed container main")
	fx.events.Eventf(events.Normal, "Killing", "default/gone-node1", "", "Stopping pod")

	tests := []struct {
		name     string
		args     []string
		want     []string // reasons, in order
		header   string
		wantErr  string
		wantCode int
	}{
		{name: "all", want: []string{"Started", "BackOff", "Killing"}, header: "NAMESPACE LAST SEEN TYPE REASON OBJECT CONTAINER MESSAGE"},
		{name: "namespace", args: []string{"-n", "kube-system"}, want: []string{"BackOff"}, header: "LAST SEEN TYPE REASON OBJECT CONTAINER MESSAGE"},
		{name: "pod by declared name", args: []string{"--pod", "web"}, want: []string{"Started"}},
		{name: "pod in a namespace", args: []string{"--pod", "dns", "-n", "kube-system"}, want: []string{"BackOff"}},
		{name: "pod that is gone", args: []string{"--pod", "gone-node1"}, want: []string{"Killing"}},
		{name: "pod with none", args: []string{"--pod", "nope"}},
		{name: "argument", args: []string{"web"}, wantErr: "--pod", wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fx.run(append([]string{"events"}, tc.args...)...)
			if r.code() != tc.wantCode || tc.wantErr != "" && !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Fatalf("exit %d (%v), want %d %q", r.code(), r.err, tc.wantCode, tc.wantErr)
			}
			if tc.wantErr != "" {
				return
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(tc.want) == 0 {
				if r.stdout != "" || !strings.Contains(r.stderr, "No events found") {
					t.Errorf("stdout %q, stderr %q; want no events found", r.stdout, r.stderr)
				}
				return
			}
			if tc.header != "" && spaces.ReplaceAllString(lines[0], " ") != tc.header {
				t.Errorf("header %q, want %q", lines[0], tc.header)
			}
			var reasons []string
			for _, l := range lines[1:] {
				for _, reason := range []string{"Started", "BackOff", "Killing"} {
					if strings.Contains(l, reason) {
						reasons = append(reasons, reason)
					}
				}
			}
			if strings.Join(reasons, " ") != strings.Join(tc.want, " ") {
				t.Errorf("listed %q, want %q:\n%s", reasons, tc.want, r.stdout)
			}
		})
	}
	r := fx.run("events", "-n", "kube-system")
	if !strings.Contains(r.stdout, "(x2)") || !strings.Contains(r.stdout, "pod/dns-node1") {
		t.Errorf("a repeated event shows its count and its pod:\n%s", r.stdout)
	}
}

// TestEventsWatch: the recorded events, then new ones as they happen, of
// the pod asked for only. Once the watch printed what was recorded, it
// watches: an event recorded then is never lost between the two.
func TestEventsWatch(t *testing.T) {
	fx := newFixture(t)
	fx.pods.Set(staticPod("default", "web", "main"))
	fx.events.Eventf(events.Normal, "Pulled", "default/web-node1", "main", "pulled before")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := apitest.NewOutput()
	done := make(chan result, 1) // buffered: the command never blocks on exit
	go func() {
		done <- runCLI(ctx, out, "events", "--server", "unix://"+fx.socket, "-w", "--pod", "web")
	}()
	out.WaitFor(t, "pulled before")
	fx.events.Eventf(events.Normal, "Started", "default/other-node1", "main", "another pod")
	fx.events.Eventf(events.Warning, "Unhealthy", "default/web-node1", "main", "Liveness probe failed:\nconnection refused")
	out.WaitFor(t, "Liveness probe failed: connection refused")
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if strings.Contains(r.stdout, "another pod") {
		t.Errorf("the watch shows another pod's event:\n%s", r.stdout)
	}
	if n := strings.Count(r.stdout, "LAST SEEN"); n != 1 {
		t.Errorf("the header is printed %d times:\n%s", n, r.stdout)
	}
	if n := strings.Count(r.stdout, "pulled before"); n != 1 || r.stderr != "" {
		t.Errorf("the event before the watch is printed %d times, and it said %q:\n%s", n, r.stderr, r.stdout)
	}
}

// TestEventsWatchResumes: when the connection of a watch breaks, the watch
// goes on from the last event it printed, with what was recorded
// meanwhile and none printed twice; when podsup no longer keeps some of
// those, it says so, and only then.
func TestEventsWatchResumes(t *testing.T) {
	tests := []struct {
		name     string
		pod      bool // watch default/web-node1 only
		before   int  // events of another pod recorded before the watch
		meantime int  // events of web recorded while the watch is broken
		lost     bool
	}{
		{name: "the ring holds what happened", before: 1, meantime: 3},
		{name: "the ring dropped some of it", before: 1, meantime: 150, lost: true}, // the fixture keeps 100
		// The watch has printed no event: it resumes from where podsup
		// said its list ended.
		{name: "of a pod, the ring holds what happened", pod: true, before: 150, meantime: 3},
		{name: "of a pod, the ring dropped some of it", pod: true, before: 1, meantime: 150, lost: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			for i := range tc.before {
				fx.events.Eventf(events.Normal, "Pulled", "default/other-node1", "main", "other %d.", i)
			}
			c, err := newClient(connOptions{server: "unix://" + fx.socket})
			if err != nil {
				t.Fatal(err)
			}
			query := url.Values{"watch": {"true"}}
			if tc.pod {
				query.Set("pod", "default/web-node1")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out, errOut := apitest.NewOutput(), apitest.NewOutput()
			paused, resume := make(chan struct{}, 1), make(chan struct{})
			listed := make(chan struct{}, 1)
			w := &eventWatch{table: &eventTable{out: out}, errOut: errOut, query: query,
				open: func(ctx context.Context, q url.Values) (io.ReadCloser, string, error) {
					body, epoch, err := c.watchEvents(ctx, q)
					return &bookmarkReader{ReadCloser: body, seen: listed}, epoch, err
				},
				pause: func(ctx context.Context) error {
					paused <- struct{}{}
					select {
					case <-resume:
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}}
			done := make(chan error, 1) // buffered: the watch never blocks on exit
			go func() { done <- w.run(ctx) }()
			apitest.Await(t, listed, "the watch to list")

			fx.srv.CloseClientConnections()
			apitest.Await(t, paused, "the broken watch to pause")
			for i := range tc.meantime {
				fx.events.Eventf(events.Normal, "Step", "default/web-node1", "main", "step %d.", i)
			}
			fx.events.Eventf(events.Normal, "Created", "default/web-node1", "main", "during the break")
			close(resume)
			out.WaitFor(t, "during the break") // the watch has resumed
			fx.events.Eventf(events.Normal, "Started", "default/web-node1", "main", "after the break")
			out.WaitFor(t, "after the break")
			cancel()
			if err := apitest.Await(t, done, "the watch to end"); err != nil {
				t.Fatal(err)
			}

			printed := out.String()
			for i := range tc.before {
				want := 1
				if tc.pod {
					want = 0
				}
				if n := strings.Count(printed, fmt.Sprintf("other %d.", i)); n != want {
					t.Errorf("another pod's event %d is printed %d times, want %d:\n%s", i, n, want, printed)
				}
			}
			// The ring kept the newest of: the events before the break,
			// the steps and the event during it.
			first := tc.meantime + 1 - fx.events.Capacity()
			for i := range tc.meantime {
				want := 1
				if tc.lost && i < first {
					want = 0
				}
				if n := strings.Count(printed, fmt.Sprintf("step %d.", i)); n != want {
					t.Errorf("step %d is printed %d times, want %d:\n%s", i, n, want, printed)
				}
			}
			if n := strings.Count(printed, "LAST SEEN"); n != 1 {
				t.Errorf("the header is printed %d times:\n%s", n, printed)
			}
			said := errOut.String()
			warned := strings.Contains(said, "are no longer kept")
			if warned != tc.lost || tc.lost && !strings.Contains(said, "warning: events recorded after event 1 are no longer kept (podsup keeps the last 100)") ||
				!strings.Contains(said, "; watching again") {
				t.Errorf("the watch said\n%s\nwant it to say it watches again, and lost events: %v", errOut, tc.lost)
			}
		})
	}
}

// bookmarkReader is the stream of a watch, which tells when it has brought
// the bookmark that ends the list: the watch takes every line it read
// before it sees the stream end.
type bookmarkReader struct {
	io.ReadCloser
	read bytes.Buffer
	seen chan<- struct{} // size 1
}

func (r *bookmarkReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.read.Write(p[:n])
	if bytes.Contains(r.read.Bytes(), []byte(`"kind":"Bookmark"`)) {
		select {
		case r.seen <- struct{}{}:
		default:
		}
	}
	return n, err
}

// stream is what a fake podsup answers to a watch.
type stream struct {
	wantQuery string // since and epoch
	epoch     string
	lines     []string
	err       error
}

// TestEventWatchStreams: how a watch goes on after its stream ends, as
// podsup answers each time.
func TestEventWatchStreams(t *testing.T) {
	ev := func(seq int, msg string) string {
		return fmt.Sprintf(`{"seq":%d,"type":"Normal","reason":"Started","pod":"default/web-node1","message":%q,"count":1}`, seq, msg)
	}
	unreachable := fmt.Errorf("%w: connection refused", ErrUnreachable)
	const ended = "podsup events: podsup ended the watch; watching again"
	tests := []struct {
		name       string
		streams    []stream
		wantOut    []string // messages printed, in order
		wantErrOut []string // lines
		wantErr    string
	}{
		{name: "resumes after the last event",
			streams: []stream{
				{epoch: "a", lines: []string{ev(1, "one"), ev(2, "two")}},
				{wantQuery: "epoch=a&since=2", epoch: "a", lines: []string{ev(3, "three")}},
			},
			wantOut: []string{"one", "two", "three"}, wantErrOut: []string{ended, ended}},
		{name: "resumes after a bookmark",
			streams: []stream{
				{epoch: "a", lines: []string{ev(1, "one"), `{"kind":"Bookmark","seq":7}`}},
				{wantQuery: "epoch=a&since=7", epoch: "a", lines: []string{ev(8, "eight")}},
			},
			wantOut: []string{"one", "eight"}, wantErrOut: []string{ended, ended}},
		{name: "prints nothing twice",
			streams: []stream{
				{epoch: "a", lines: []string{ev(1, "one"), ev(2, "two")}},
				{wantQuery: "epoch=a&since=2", epoch: "a", lines: []string{ev(2, "two"), ev(3, "three")}},
			},
			wantOut: []string{"one", "two", "three"}, wantErrOut: []string{ended, ended}},
		{name: "podsup restarted",
			streams: []stream{
				{epoch: "a", lines: []string{ev(1, "one"), ev(2, "two")}},
				{wantQuery: "epoch=a&since=2", epoch: "b", lines: []string{
					`{"kind":"Status","code":410,"reason":"Expired","message":"podsup restarted"}`, ev(1, "new one")}},
			},
			wantOut: []string{"one", "two", "new one"}, wantErrOut: []string{ended, "podsup events: warning: podsup restarted", ended}},
		{name: "podsup is away a while",
			streams: []stream{
				{epoch: "a", lines: []string{ev(1, "one")}},
				{wantQuery: "epoch=a&since=1", err: unreachable},
				{wantQuery: "epoch=a&since=1", err: unreachable},
				{wantQuery: "epoch=a&since=1", epoch: "a", lines: []string{ev(2, "two")}},
			},
			wantOut: []string{"one", "two"},
			// Each break is said once, however many tries it takes.
			wantErrOut: []string{ended, "podsup events: cannot reach podsup: connection refused; watching again", ended}},
		{name: "podsup is not there",
			streams: []stream{{err: unreachable}},
			wantErr: "cannot reach podsup"},
		{name: "an older podsup cannot resume",
			streams: []stream{{lines: []string{ev(0, "one")}}},
			wantOut: []string{"one"}},
		{name: "podsup refuses to resume",
			streams: []stream{
				{epoch: "a", lines: []string{ev(1, "one")}},
				{wantQuery: "epoch=a&since=1", err: &StatusError{Code: 404, Message: "events are not recorded"}},
			},
			wantOut: []string{"one"}, wantErrOut: []string{ended}, wantErr: "events are not recorded"},
		{name: "a line that is not JSON",
			streams: []stream{{epoch: "a", lines: []string{"junk"}}},
			wantErr: "read events"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errOut bytes.Buffer
			opened := 0
			w := &eventWatch{table: &eventTable{out: &out}, errOut: &errOut, query: url.Values{"watch": {"true"}},
				open: func(ctx context.Context, q url.Values) (io.ReadCloser, string, error) {
					if opened == len(tc.streams) {
						cancel() // the test has seen what it wanted
						return nil, "", ctx.Err()
					}
					s := tc.streams[opened]
					opened++
					if q.Get("allowWatchBookmarks") != "true" {
						t.Errorf("watch %d does not ask for bookmarks: %s", opened, q.Encode())
					}
					q.Del("watch")
					q.Del("allowWatchBookmarks")
					if got := q.Encode(); got != s.wantQuery {
						t.Errorf("watch %d asked for %q, want %q", opened, got, s.wantQuery)
					}
					if s.err != nil {
						return nil, "", s.err
					}
					return io.NopCloser(strings.NewReader(strings.Join(s.lines, "\n"))), s.epoch, nil
				},
				pause: func(context.Context) error { return nil }}
			err := w.run(ctx)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("the watch ended with %v, want %q", err, tc.wantErr)
			}
			var printed []string
			if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) > 1 {
				for _, line := range lines[1:] { // after the header
					printed = append(printed, strings.Join(strings.Fields(line)[5:], " ")) // the message
				}
			}
			if strings.Join(printed, "|") != strings.Join(tc.wantOut, "|") {
				t.Errorf("printed %q, want %q:\n%s", printed, tc.wantOut, out.String())
			}
			if got := strings.Split(strings.TrimSpace(errOut.String()), "\n"); strings.Join(got, "|") != strings.Join(tc.wantErrOut, "|") {
				t.Errorf("said %q, want %q", got, tc.wantErrOut)
			}
		})
	}
}
