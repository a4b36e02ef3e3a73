// Package health runs liveness, readiness and startup probes and lifecycle
// hooks as the kubelet does: one worker per container instance and probe
// type, stepping on an injected clock; exec probes run in the container
// through containerd, network probes go to the pod's IP (the host's for
// hostNetwork pods).
package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/manifest"
)

// Result is the outcome of a probe.
type Result int

// The results a probe has.
const (
	// Unknown means the probe could not be run (the container is going
	// away): it counts neither way, as with the kubelet.
	Unknown Result = iota
	Success
	Failure
)

func (r Result) String() string { return [...]string{"unknown", "success", "failure"}[r] }

// ErrTimeout is returned by an Execer whose command ran past its timeout
// and was killed.
var ErrTimeout = errors.New("timed out")

// Execer runs a command in a running container, killing it at the timeout,
// and returns its exit code and (bounded) output.
type Execer interface {
	Exec(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (int, []byte, error)
}

// maxOutput bounds what a failed probe reports, as the kubelet's 10 KiB.
const maxOutput = 10 << 10

// userAgent is what HTTP and gRPC probes say they are; applications that
// recognise the kubelet's probes by "kube-probe/" keep doing so.
const userAgent = "kube-probe/podsup"

// runner runs one probe handler; the prober, or a fake in tests.
type runner interface {
	run(ctx context.Context, h *v1.ProbeHandler, t target, timeout time.Duration) (Result, string)
}

var _ runner = (*prober)(nil)

// prober runs the four kinds of probe handler.
type prober struct {
	exec  Execer
	clock clock.WithDelayedExecution // times network probes' timeouts
}

func newProber(exec Execer, clk clock.WithDelayedExecution) *prober {
	return &prober{exec: exec, clock: clk}
}

// maxRedirects is how many same-host redirects an HTTP probe follows.
const maxRedirects = 10

// target is where a container's probes go.
type target struct {
	host        string // the pod's IP, or the host's for hostNetwork pods
	containerID string
	container   *v1.Container
}

// run runs one handler within timeout and returns its result and, for a
// failure, what to tell a person.
func (p *prober) run(ctx context.Context, h *v1.ProbeHandler, t target, timeout time.Duration) (Result, string) {
	if h.Exec != nil {
		// The runtime enforces the timeout itself, killing the command.
		return p.runExec(ctx, h.Exec.Command, t, timeout)
	}
	// A timeout on the injected clock rather than a context deadline, so
	// that tests run it out; what ends the context interrupts the probe's
	// I/O, and context.Cause says it was the timeout.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := p.clock.AfterFunc(timeout, func() { cancel(context.DeadlineExceeded) })
	defer timer.Stop()
	switch {
	case h.HTTPGet != nil:
		return p.runHTTP(ctx, h.HTTPGet, t)
	case h.TCPSocket != nil:
		return p.runTCP(ctx, h.TCPSocket, t)
	case h.GRPC != nil:
		return p.runGRPC(ctx, h.GRPC, t)
	}
	return Unknown, "no handler"
}

func (p *prober) runExec(ctx context.Context, cmd []string, t target, timeout time.Duration) (Result, string) {
	code, out, err := p.exec.Exec(ctx, t.containerID, cmd, timeout)
	switch {
	case errors.Is(err, ErrTimeout):
		return Failure, fmt.Sprintf("command %q timed out after %s", strings.Join(cmd, " "), timeout)
	case err != nil:
		return Unknown, err.Error()
	case code != 0:
		return Failure, fmt.Sprintf("command %q exited with %d: %s", strings.Join(cmd, " "), code, trim(out))
	}
	return Success, ""
}

func hostOr(explicit, fallback string) string {
	if explicit != "" {
		return explicit
	}
	return fallback
}

func (p *prober) runHTTP(ctx context.Context, g *v1.HTTPGetAction, t target) (Result, string) {
	port, ok := manifest.ResolvePort(g.Port, t.container)
	if !ok {
		return Failure, fmt.Sprintf("port %q names no port of the container", g.Port.String())
	}
	u := &url.URL{Scheme: strings.ToLower(string(g.Scheme)), Host: net.JoinHostPort(hostOr(g.Host, t.host), strconv.Itoa(int(port)))}
	path, query, _ := strings.Cut(g.Path, "?")
	u.Path, u.RawQuery = path, query
	// Follow redirects to the same host, as the kubelet does; a redirect
	// elsewhere ends the probe with the redirect itself, which succeeds.
	for redirects := 0; ; redirects++ {
		code, location, body, err := httpGet(ctx, u, g.HTTPHeaders)
		if err != nil {
			return Failure, fmt.Sprintf("Get %q: %v", u.String(), err)
		}
		if code >= 300 && code < 400 && location != "" && redirects < maxRedirects {
			if next, err := u.Parse(location); err == nil && next.Hostname() == u.Hostname() {
				u = next
				continue
			}
		}
		if code >= 200 && code < 400 {
			return Success, ""
		}
		return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d: %s", code, trim(body))
	}
}

// httpGet makes one GET on a connection of its own, closed afterwards: the
// kubelet's probes use no keep-alive either, so a server that stops
// accepting connections fails its probe. Doing it without net/http's
// Transport spares the goroutines it starts for every connection, which
// were most of what an HTTP probe cost podsup.
func httpGet(ctx context.Context, u *url.URL, headers []v1.HTTPHeader) (int, string, []byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return 0, "", nil, deadlineErr(ctx, unwrapOpError(err))
	}
	defer conn.Close()
	// The end of ctx interrupts whatever the connection is waiting for.
	raw := conn
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if u.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}) //nolint:gosec // probes never verify, as in Kubernetes
		if err := tc.HandshakeContext(ctx); err != nil {
			return 0, "", nil, deadlineErr(ctx, err)
		}
		conn = tc
	}
	req := &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Close: true}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	for _, h := range headers {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	if err := req.Write(conn); err != nil {
		return 0, "", nil, deadlineErr(ctx, err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), req)
	if err != nil {
		return 0, "", nil, deadlineErr(ctx, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
	return resp.StatusCode, resp.Header.Get("Location"), body, nil
}

// deadlineErr reports a probe whose context ended (its timeout: context
// deadline exceeded) as such, not as the I/O error that ending caused.
func deadlineErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func (p *prober) runTCP(ctx context.Context, s *v1.TCPSocketAction, t target) (Result, string) {
	port, ok := manifest.ResolvePort(s.Port, t.container)
	if !ok {
		return Failure, fmt.Sprintf("port %q names no port of the container", s.Port.String())
	}
	addr := net.JoinHostPort(hostOr(s.Host, t.host), strconv.Itoa(int(port)))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Failure, fmt.Sprintf("dial tcp %s: %v", addr, deadlineErr(ctx, unwrapOpError(err)))
	}
	conn.Close()
	return Success, ""
}

func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

func (p *prober) runGRPC(ctx context.Context, g *v1.GRPCAction, t target) (Result, string) {
	addr := net.JoinHostPort(t.host, strconv.Itoa(int(g.Port)))
	conn, err := grpc.DialContext(ctx, addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithBlock(), grpc.WithUserAgent(userAgent))
	if err != nil {
		return Failure, fmt.Sprintf("failed to connect to service at %q: %v", addr, deadlineErr(ctx, err))
	}
	defer conn.Close()
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return Failure, fmt.Sprintf("health rpc to %q failed: %v", addr, deadlineErr(ctx, err))
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus())
	}
	return Success, ""
}

// trim makes output one readable, bounded string.
func trim(b []byte) string {
	if len(b) > maxOutput {
		b = b[:maxOutput]
	}
	return strings.TrimSpace(string(b))
}
