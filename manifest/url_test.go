package manifest

import (
	"context"
	"encoding/pem"
	"io"
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
	delay       time.Duration
	etag        string
	conditional int // requests that carried If-None-Match
	notModified int
	headers     http.Header
}

func (m *manifestServer) set(status int, body string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.status, m.body = status, body
	m.etag = `"` + string(rune('a'+len(body)%26)) + time.Now().Format("150405.000000000") + `"`
}

func (m *manifestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	status, body, etag, delay := m.status, m.body, m.etag, m.delay
	m.headers = r.Header.Clone()
	if r.Header.Get("If-None-Match") != "" {
		m.conditional++
	}
	if status == http.StatusOK && r.Header.Get("If-None-Match") == etag {
		m.notModified++
		m.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	m.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("ETag", etag)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func newURLSource(t *testing.T, url string, opts ...URLOption) *URLSource {
	t.Helper()
	opts = append([]URLOption{WithURLLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithTimeout(500 * time.Millisecond)}, opts...)
	s, err := NewURLSource(url, Static{NodeName: "node1", Source: SourceHTTP}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestURLSourcePolls(t *testing.T) {
	srv := &manifestServer{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	s := newURLSource(t, ts.URL+"/pods?token=abc", WithHeader(http.Header{"Authorization": {"Bearer xyz"}}))
	ctx := context.Background()

	steps := []struct {
		name      string
		status    int
		body      string
		delay     time.Duration
		wantPods  string
		wantStale bool
		wantErr   string
	}{
		{"first good body", 200, podYAML("web", "web:1"), 0, "web=web:1", false, ""},
		{"unchanged, answered 304", 200, "", 0, "web=web:1", false, ""},
		{"server error keeps pods", 500, "database on fire", 0, "", true, "HTTP 500 Internal Server Error: database on fire"},
		{"empty body keeps pods", 200, "  \n# nothing\n", 0, "", true, "holds no document"},
		{"unparsable body keeps pods", 200, "{{{", 0, "", true, "yaml"},
		{"invalid pod keeps pods", 200, "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a}]}\n", 0, "", true, "spec.containers[0].image: required"},
		{"huge body refused", 200, strings.Repeat("#", MaxManifestBytes+10), 0, "", true, "more than the limit"},
		{"timeout keeps pods", 200, podYAML("web", "web:9"), 2 * time.Second, "", true, "deadline exceeded"},
		{"new content", 200, podYAML("web", "web:2") + "---\n" + podYAML("db", "db:1"), 0, "db=db:1 web=web:2", false, ""},
		{"empty PodList removes", 200, "apiVersion: v1\nkind: PodList\nitems: []\n", 0, "", false, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			srv.mu.Lock()
			srv.delay = st.delay
			srv.mu.Unlock()
			if st.body != "" || st.status != 200 {
				srv.set(st.status, st.body)
			}
			u := s.Poll(ctx)
			if u.Stale != st.wantStale {
				t.Fatalf("stale=%v, want %v (problems %v)", u.Stale, st.wantStale, u.Problems)
			}
			if st.wantStale {
				if len(u.Problems) != 1 || !strings.Contains(u.Problems[0].Err.Error(), st.wantErr) {
					t.Fatalf("problems %v, want %q", u.Problems, st.wantErr)
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
	if srv.notModified == 0 {
		t.Error("the server never answered 304: If-None-Match was not sent")
	}
	if got := srv.headers.Get("Authorization"); got != "Bearer xyz" {
		t.Errorf("Authorization header %q", got)
	}
}

// TestURLSourceRun checks what Run sends: one snapshot per change, nothing for
// polls that change nothing, and a stale update while the server fails.
func TestURLSourceRun(t *testing.T) {
	srv := &manifestServer{}
	srv.set(200, podYAML("web", "web:1"))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	s := newURLSource(t, ts.URL, WithInterval(50*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Update, 100)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx, out) }()
	defer func() { cancel(); <-done }()

	recv := func() Update {
		select {
		case u := <-out:
			return u
		case <-time.After(5 * time.Second):
			t.Fatal("no update")
		}
		return Update{}
	}
	if u := recv(); u.Stale || len(u.Pods) != 1 {
		t.Fatalf("first: %+v", u)
	}
	time.Sleep(300 * time.Millisecond) // several polls, all 304
	if len(out) != 0 {
		t.Fatalf("%d updates for unchanged content", len(out))
	}
	srv.set(503, "down")
	if u := recv(); !u.Stale {
		t.Fatalf("want a stale update while the server fails, got %+v", u)
	}
	time.Sleep(200 * time.Millisecond)
	if len(out) != 0 {
		t.Fatalf("a lasting failure was reported %d more times", len(out))
	}
	srv.set(200, podYAML("web", "web:2"))
	if u := recv(); u.Stale || u.Pods[0].Spec.Containers[0].Image != "web:2" {
		t.Fatalf("after recovery: %+v", u)
	}
}

func TestURLSourceTLS(t *testing.T) {
	srv := &manifestServer{}
	srv.set(200, podYAML("web", "web:1"))
	ts := httptest.NewTLSServer(srv)
	defer ts.Close()

	// Not trusted by the system roots: refused.
	untrusted := newURLSource(t, ts.URL)
	if u := untrusted.Poll(context.Background()); !u.Stale || !strings.Contains(u.Problems[0].Err.Error(), "certificate") {
		t.Fatalf("an unverified certificate was accepted: %+v", u)
	}
	// Trusted through --manifest-url-ca.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
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
