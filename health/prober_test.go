package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeExec answers exec probes from a table of commands.
type fakeExec map[string]struct {
	code int
	out  string
	err  error
}

func (f fakeExec) Exec(_ context.Context, _ string, cmd []string, _ time.Duration) (int, []byte, error) {
	r := f[strings.Join(cmd, " ")]
	return r.code, []byte(r.out), r.err
}

// newTestProber is a prober whose timeouts run out only when the test steps
// the clock it returns.
func newTestProber(exec Execer) (*prober, *clocktesting.FakeClock) {
	clk := clocktesting.NewFakeClock(t0)
	return newProber(exec, clk), clk
}

// timesOut runs probe, which must block until its timeout, and runs that
// out once arrived reports that the probe reached what it waits on.
func timesOut(t *testing.T, clk *clocktesting.FakeClock, timeout time.Duration, arrived <-chan struct{}, probe func() (Result, string)) (Result, string) {
	t.Helper()
	type outcome struct {
		r   Result
		out string
	}
	done := make(chan outcome, 1)
	go func() {
		r, out := probe()
		done <- outcome{r, out}
	}()
	select {
	case o := <-done:
		t.Fatalf("the probe ended (%s %q) before it reached the server", o.r, o.out)
	case <-arrived:
	case <-time.After(time.Minute):
		t.Fatal("the probe did not reach the server within a minute")
	}
	clk.Step(timeout)
	o := <-done
	return o.r, o.out
}

func TestExecProbe(t *testing.T) {
	p, _ := newTestProber(fakeExec{
		"ok":       {code: 0},
		"bad":      {code: 2, out: "database unreachable\n"},
		"hang":     {err: fmt.Errorf("exec: %w", ErrTimeout)},
		"vanished": {err: errors.New("container is not running")},
	})
	cases := []struct {
		cmd    string
		result Result
		output string
	}{
		{"ok", Success, ""},
		{"bad", Failure, `command "bad" exited with 2: database unreachable`},
		{"hang", Failure, `command "hang" timed out after 1s`},
		{"vanished", Unknown, "container is not running"},
	}
	for _, tc := range cases {
		r, out := p.run(context.Background(), &v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{tc.cmd}}}, target{}, time.Second)
		if r != tc.result || out != tc.output {
			t.Errorf("%s: %s %q, want %s %q", tc.cmd, r, out, tc.result, tc.output)
		}
	}
}

func hostPort(t *testing.T, rawURL string) (string, int32) {
	t.Helper()
	u, _ := url.Parse(rawURL)
	host, port, _ := net.SplitHostPort(u.Host)
	n, _ := strconv.Atoi(port)
	return host, int32(n)
}

func TestHTTPProbe(t *testing.T) {
	var gotHost, gotHeader, gotAgent string
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotHeader, gotAgent = r.Host, r.Header.Get("X-Probe"), r.UserAgent()
	})
	mux.HandleFunc("/redirect-here", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/redirect-away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://192.0.2.1:1/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/not-modified", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("warming up"))
	})
	hung, release := make(chan struct{}, 1), make(chan struct{})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		hung <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tls := httptest.NewTLSServer(mux)
	defer tls.Close()
	defer close(release) // before the servers close: they wait for their handlers
	host, port := hostPort(t, srv.URL)
	_, tlsPort := hostPort(t, tls.URL)
	c := &v1.Container{Ports: []v1.ContainerPort{{Name: "http", ContainerPort: port}}}
	p, clk := newTestProber(nil)
	get := func(path string, scheme v1.URIScheme, port intstr.IntOrString, headers ...v1.HTTPHeader) (Result, string) {
		h := &v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: path, Port: port, Scheme: scheme, HTTPHeaders: headers}}
		return p.run(context.Background(), h, target{host: host, container: c}, time.Second)
	}
	byNumber, byName, tlsP := intstr.FromInt32(port), intstr.FromString("http"), intstr.FromInt32(tlsPort)
	cases := []struct {
		name   string
		path   string
		scheme v1.URIScheme
		port   intstr.IntOrString
		result Result
		output string
	}{
		{"200", "/ok", v1.URISchemeHTTP, byNumber, Success, ""},
		{"named port", "/ok", v1.URISchemeHTTP, byName, Success, ""},
		{"304 is success", "/not-modified", v1.URISchemeHTTP, byNumber, Success, ""},
		{"redirect on the same host is followed", "/redirect-here", v1.URISchemeHTTP, byNumber, Success, ""},
		{"redirect elsewhere ends the probe as success", "/redirect-away", v1.URISchemeHTTP, byNumber, Success, ""},
		{"503 fails with the body", "/fail", v1.URISchemeHTTP, byNumber, Failure, "HTTP probe failed with statuscode: 503: warming up"},
		{"HTTPS without verification", "/ok", v1.URISchemeHTTPS, tlsP, Success, ""},
		{"unknown port name", "/ok", v1.URISchemeHTTP, intstr.FromString("nope"), Failure, `port "nope" names no port`},
	}
	for _, tc := range cases {
		r, out := get(tc.path, tc.scheme, tc.port)
		if r != tc.result || !strings.Contains(out, tc.output) {
			t.Errorf("%s: %s %q, want %s containing %q", tc.name, r, out, tc.result, tc.output)
		}
	}
	r, out := timesOut(t, clk, time.Second, hung, func() (Result, string) { return get("/hang", v1.URISchemeHTTP, byNumber) })
	if want := fmt.Sprintf(`Get "%s/hang": context deadline exceeded`, srv.URL); r != Failure || out != want {
		t.Errorf("timeout: %s %q, want failure %q", r, out, want)
	}
	get("/ok", v1.URISchemeHTTP, byNumber, v1.HTTPHeader{Name: "Host", Value: "app.example"}, v1.HTTPHeader{Name: "X-Probe", Value: "yes"})
	if gotHost != "app.example" || gotHeader != "yes" || !strings.HasPrefix(gotAgent, "kube-probe/") {
		t.Errorf("request: host %q, header %q, user agent %q", gotHost, gotHeader, gotAgent)
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port := hostPort(t, "tcp://"+ln.Addr().String())
	p, _ := newTestProber(nil)
	h := &v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(port)}}
	if r, out := p.run(context.Background(), h, target{host: "127.0.0.1", container: &v1.Container{}}, time.Second); r != Success {
		t.Errorf("listening: %s %s", r, out)
	}
	ln.Close()
	if r, out := p.run(context.Background(), h, target{host: "127.0.0.1", container: &v1.Container{}}, time.Second); r != Failure || !strings.Contains(out, "refused") {
		t.Errorf("closed: %s %q", r, out)
	}
}

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	_, port := hostPort(t, "tcp://"+ln.Addr().String())
	p, clk := newTestProber(nil)
	probeAt := func(port int32, service string) (Result, string) {
		return p.run(context.Background(), &v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: port, Service: &service}}, target{host: "127.0.0.1"}, time.Second)
	}
	probe := func(service string) (Result, string) { return probeAt(port, service) }
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	if r, _ := probe(""); r != Success {
		t.Errorf("overall health: %s", r)
	}
	if r, out := probe("db"); r != Failure || !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("db not serving: %s %q", r, out)
	}
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
	if r, _ := probe("db"); r != Success {
		t.Errorf("db serving: %s", r)
	}
	if r, _ := probe("unknown"); r != Failure {
		t.Errorf("unknown service: %s", r)
	}

	// A server that accepts and never answers holds the probe until its
	// timeout.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	accepted := make(chan struct{}, 1)
	go func() { // ends when mute is closed
		for {
			conn, err := mute.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	_, mutePort := hostPort(t, "tcp://"+mute.Addr().String())
	r, out := timesOut(t, clk, time.Second, accepted, func() (Result, string) { return probeAt(mutePort, "") })
	if r != Failure || !strings.HasSuffix(out, ": context deadline exceeded") {
		t.Errorf("mute server: %s %q, want a failure saying the deadline passed", r, out)
	}
}
