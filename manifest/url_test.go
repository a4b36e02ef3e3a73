package manifest

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// manifestServer serves a body that the test changes, with an ETag, and
// records the requests it gets.
type manifestServer struct {
	mu          sync.Mutex
	body        string
	status      int
	stall       stall
	version     int // makes every set's ETag new
	etag        string
	requests    int
	notModified int
	headers     http.Header

	stalled chan struct{} // a request is being stalled; buffered
	release chan struct{} // closed when the test ends: stalled requests return
}

// stall is how a manifestServer holds a request up, until the client gives
// up or the test ends.
type stall int

const (
	answer       stall = iota // no stall: answer at once
	stallHeaders              // send nothing at all
	stallBody                 // send the headers and half the body
)

// startManifestServer starts a manifestServer, over TLS if tls is set, and
// stops it when the test ends.
func startManifestServer(t *testing.T, tls bool) (*manifestServer, *httptest.Server) {
	srv := &manifestServer{status: http.StatusOK, stalled: make(chan struct{}, 16), release: make(chan struct{})}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused certificate's handshake
	if tls {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(srv.release) }) // runs first: Close waits for handlers
	return srv, ts
}

func (m *manifestServer) set(status int, body string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.version++
	m.status, m.body = status, body
	m.etag = fmt.Sprintf(`"v%d"`, m.version)
}

func (m *manifestServer) setStall(st stall) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stall = st
}

func (m *manifestServer) requestCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

// seen is how many requests were answered 304, and the last request's
// headers.
func (m *manifestServer) seen() (notModified int, headers http.Header) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.notModified, m.headers
}

func (m *manifestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	status, body, etag, st := m.status, m.body, m.etag, m.stall
	m.requests++
	m.headers = r.Header.Clone()
	if st == answer && status == http.StatusOK && r.Header.Get("If-None-Match") == etag {
		m.notModified++
		m.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	m.mu.Unlock()
	if st == stallBody {
		w.Header().Set("ETag", etag)
		w.WriteHeader(status)
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
	}
	if st != answer {
		select {
		case m.stalled <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-m.release:
		}
		return
	}
	w.Header().Set("ETag", etag)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// newURLSource makes a source on a fake clock: no request times out unless
// the test steps the clock.
func newURLSource(t *testing.T, url string, opts ...URLOption) *URLSource {
	t.Helper()
	opts = append([]URLOption{WithURLLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithURLClock(newFakeClock())}, opts...)
	s, err := NewURLSource(url, Static{NodeName: "node1", Source: SourceHTTP}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bodyWatch is a transport that tells the test when the source starts to
// read a response's body.
type bodyWatch struct {
	reading chan struct{} // buffered
}

func (b *bodyWatch) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		resp.Body = &watchedBody{ReadCloser: resp.Body, reading: b.reading}
	}
	return resp, err
}

type watchedBody struct {
	io.ReadCloser
	reading chan struct{}
	once    sync.Once
}

func (w *watchedBody) Read(p []byte) (int, error) {
	w.once.Do(func() {
		select {
		case w.reading <- struct{}{}:
		default:
		}
	})
	return w.ReadCloser.Read(p)
}

func TestURLSourcePolls(t *testing.T) {
	srv, ts := startManifestServer(t, false)
	clk := newFakeClock()
	const timeout = 10 * time.Second
	s := newURLSource(t, ts.URL+"/pods?token=abc", WithHeader(http.Header{"Authorization": {"Bearer xyz"}}), WithURLClock(clk), WithTimeout(timeout))
	watch := &bodyWatch{reading: make(chan struct{}, 1)}
	s.client = &http.Client{Transport: watch}
	ctx := context.Background()

	steps := []struct {
		name      string
		status    int
		body      string
		stall     stall
		wantPods  string
		wantStale bool
		wantErr   string
	}{
		{"first good body", 200, podYAML("web", "web:1"), answer, "web=web:1", false, ""},
		{"unchanged, answered 304", 200, "", answer, "web=web:1", false, ""},
		{"server error keeps pods", 500, "database on fire", answer, "", true, "HTTP 500 Internal Server Error: database on fire"},
		{"empty body keeps pods", 200, "  \n# nothing\n", answer, "", true, "holds no document"},
		{"unparsable body keeps pods", 200, "{{{", answer, "", true, "yaml"},
		{"invalid pod keeps pods", 200, "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a}]}\n", answer, "", true, "spec.containers[0].image: required"},
		{"typo in an invalid pod is shown", 200, "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, imagee: web:3}]}\n", answer, "", true, "spec.containers[0].imagee: unknown field"},
		{"huge body refused", 200, strings.Repeat("#", MaxManifestBytes+10), answer, "", true, fmt.Sprintf("body is more than the limit of %d bytes", MaxManifestBytes)},
		{"no answer times out", 200, podYAML("web", "web:9"), stallHeaders, "", true, "/pods: no complete answer within 10s: context deadline exceeded"},
		{"half a body times out", 200, podYAML("web", "web:9"), stallBody, "", true, "/pods: read body: no complete answer within 10s: context deadline exceeded"},
		{"new content", 200, podYAML("web", "web:2") + "---\n" + podYAML("db", "db:1"), answer, "db=db:1 web=web:2", false, ""},
		{"empty PodList removes", 200, "apiVersion: v1\nkind: PodList\nitems: []\n", answer, "", false, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			srv.setStall(st.stall)
			if st.body != "" || st.status != 200 {
				srv.set(st.status, st.body)
			}
			var u Update
			if st.stall == answer {
				u = s.Poll(ctx)
			} else {
				// The clock reaches the timeout only once the request
				// is stuck where the step wants it.
				polled := make(chan Update, 1)
				go func() { polled <- s.Poll(ctx) }()
				stuck := srv.stalled
				if st.stall == stallBody {
					stuck = watch.reading
				}
				select {
				case <-stuck:
				case <-time.After(waitLimit):
					t.Fatal("the request never got stuck")
				}
				clk.Step(timeout)
				u = recv(t, polled)
			}
			// Drain what a step that reads bodies left.
			select {
			case <-watch.reading:
			default:
			}
			if u.Stale != st.wantStale {
				t.Fatalf("stale=%v, want %v (problems %v)", u.Stale, st.wantStale, u.Problems)
			}
			if st.wantStale {
				if len(u.Problems) != 1 || !strings.Contains(u.Problems[0].Err.Error(), st.wantErr) {
					t.Fatalf("problems %v, want %q", u.Problems, st.wantErr)
				}
				if st.stall != answer && !errors.Is(u.Problems[0].Err, context.DeadlineExceeded) {
					t.Errorf("a timeout that is not context.DeadlineExceeded: %v", u.Problems[0].Err)
				}
				if strings.Contains(u.Problems[0].Err.Error(), "token=abc") {
					t.Errorf("the URL's query leaked into a problem: %v", u.Problems[0].Err)
				}
				return
			}
			if got := describeUpdate(u); strings.ReplaceAll(got, "-node1", "") != st.wantPods {
				t.Fatalf("pods %q, want %q", got, st.wantPods)
			}
		})
	}
	notModified, headers := srv.seen()
	if notModified == 0 {
		t.Error("the server never answered 304: If-None-Match was not sent")
	}
	if got := headers.Get("Authorization"); got != "Bearer xyz" {
		t.Errorf("Authorization header %q", got)
	}
}

// TestURLSourceRun checks what Run sends: one snapshot per change, nothing for
// polls that change nothing, and a stale update while the server fails.
func TestURLSourceRun(t *testing.T) {
	srv, ts := startManifestServer(t, false)
	srv.set(200, podYAML("web", "web:1"))
	clk := newFakeClock()
	const every = time.Minute
	// No request of the test's dozen fake minutes may time out.
	s := newURLSource(t, ts.URL, WithURLClock(clk), WithInterval(every), WithTimeout(24*time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Update, 100)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx, out) }()
	defer func() { cancel(); <-done }()

	// poll makes Run poll once more and waits for the server to see it.
	// Run handles one poll at a time, so once a poll reaches the server,
	// whatever the poll before it sent is in out.
	poll := func() {
		t.Helper()
		n := srv.requestCount()
		clk.Step(every)
		waitFor(t, "a poll", func() bool { return srv.requestCount() > n })
	}
	if u := recv(t, out); u.Stale || len(u.Pods) != 1 { // Run's ticker exists from here
		t.Fatalf("first: %+v", u)
	}
	poll()
	poll()
	poll() // all answered 304
	srv.set(503, "down")
	poll()
	if u := recv(t, out); !u.Stale {
		t.Fatalf("want a stale update while the server fails, got %s (an update for unchanged content?)", describeUpdate(u))
	}
	poll()
	poll()
	srv.set(200, podYAML("web", "web:2"))
	poll()
	if u := recv(t, out); u.Stale || u.Pods[0].Spec.Containers[0].Image != "web:2" {
		t.Fatalf("after recovery: %s (a lasting failure reported again?)", describeUpdate(u))
	}
	poll()
	poll()
	if len(out) != 0 {
		t.Fatalf("%d updates for unchanged content after recovery", len(out))
	}
	if n, _ := srv.seen(); n < 3 {
		t.Errorf("%d polls answered 304, want at least 3", n)
	}
}

func TestURLSourceTLS(t *testing.T) {
	srv, ts := startManifestServer(t, true)
	srv.set(200, podYAML("web", "web:1"))

	// Not trusted by the system roots: refused.
	untrusted := newURLSource(t, ts.URL)
	u := untrusted.Poll(context.Background())
	var refused *tls.CertificateVerificationError
	if !u.Stale || len(u.Problems) != 1 || !errors.As(u.Problems[0].Err, &refused) {
		t.Fatalf("an unverified certificate was not refused: %+v", u)
	}
	if !strings.Contains(u.Problems[0].Err.Error(), "certificate signed by unknown authority") {
		t.Errorf("refused for another reason: %v", u.Problems[0].Err)
	}
	// Trusted through --manifest-url-ca.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	trusted := newURLSource(t, ts.URL, WithCAFile(ca))
	if u := trusted.Poll(context.Background()); u.Stale || len(u.Pods) != 1 {
		t.Fatalf("with the CA: %+v", u)
	}
}

func TestNewURLSourceRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "http://", "/etc/passwd", "http://user:pw@[::1"} {
		if _, err := NewURLSource(u, testStatic); err == nil {
			t.Errorf("%q accepted", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("credentials in error: %v", err)
		}
	}
}

func TestParseHeader(t *testing.T) {
	cases := []struct {
		in, name, value string
		ok              bool
	}{
		{"Authorization: Bearer a,b", "Authorization", "Bearer a,b", true},
		{"X-Empty:", "X-Empty", "", true},
		{"no colon", "", "", false},
		{": value", "", "", false},
		{"Bad Name: v", "", "", false},
	}
	for _, tc := range cases {
		name, value, err := ParseHeader(tc.in)
		if (err == nil) != tc.ok || name != tc.name || value != tc.value {
			t.Errorf("%q: %q %q %v", tc.in, name, value, err)
		}
	}
}
