package client

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/api/apitest"
	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/logs"
	"github.com/podsup/podsup/manifest"
)

var (
	_ api.PodLister     = (*apitest.Pods)(nil)
	_ api.ProbeReporter = apitest.Probes(nil)
)

// fixture is a podsup API on a unix socket: FullHandler over fakes, a real
// event recorder, a real push source and log files in a temporary
// directory.
type fixture struct {
	t      *testing.T
	pods   *apitest.Pods
	probes apitest.Probes
	events *events.Recorder
	push   *manifest.PushSource
	logDir string
	socket string
	server string // --server: unix://SOCKET, or http(s)://127.0.0.1:PORT
	// serverArgs are the flags a client needs besides --server: a CA and
	// a token for https.
	serverArgs []string
	srv        *httptest.Server
}

// eventsAge is how long ago the fixture's events happened: far enough
// back that the age a command prints is the same however long the command
// takes on a busy machine.
const eventsAge = 10*time.Hour + 30*time.Minute

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil, onUnix) }

// Where a fixture listens.
type listenOn int

const (
	onUnix  listenOn = iota // a unix socket, as the admin socket
	onHTTP                  // http://127.0.0.1:PORT
	onHTTPS                 // https://127.0.0.1:PORT, and the client gives its CA and a token
)

// fixtureToken is the token a client gives an https fixture.
const fixtureToken = "fixture-token"

// newFixtureWith is newFixture with streams serving /exec/, /attach/ and
// /portForward/ beside the API, listening as on says.
func newFixtureWith(t *testing.T, streams http.Handler, on listenOn) *fixture {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	push, err := manifest.NewPushSource(t.TempDir(), manifest.Static{NodeName: "node1", Source: manifest.SourceAPI}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	rec := events.NewRecorder(100, quiet, clocktesting.NewFakePassiveClock(time.Now().Add(-eventsAge)))
	fx := &fixture{t: t, pods: &apitest.Pods{}, probes: apitest.Probes{}, events: rec,
		push: push, logDir: t.TempDir(), socket: shortSocketPath(t)}
	var handler http.Handler = api.FullHandler(api.Deps{Pods: fx.pods, Probes: fx.probes, Events: fx.events, Push: push, LogDir: fx.logDir})
	if streams != nil {
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		for _, p := range []string{"/exec/", "/attach/", "/portForward/"} {
			mux.Handle(p, streams)
		}
		handler = mux
	}
	srv := httptest.NewUnstartedServer(handler)
	switch on {
	case onUnix:
		ln, err := net.Listen("unix", fx.socket)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		fx.server = "unix://" + fx.socket
	case onHTTP:
		srv.Start()
		fx.server = srv.URL
	case onHTTPS:
		srv.StartTLS()
		fx.server = srv.URL
		ca := filepath.Join(t.TempDir(), "ca.crt")
		if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		fx.serverArgs = []string{"--certificate-authority", ca, "--token", fixtureToken}
	}
	t.Cleanup(srv.Close)
	fx.srv = srv
	return fx
}

// shortSocketPath is a socket path under the 107-byte limit, which a test's
// temporary directory may pass.
func shortSocketPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "psc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s.sock")
}

// staticPod is a pod as podsup runs it: name-node1, with the containers
// named, all running and ready.
func staticPod(ns, name string, containers ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-node1", UID: types.UID("uid-" + name),
		Annotations: map[string]string{manifest.AnnotationManifest: "/etc/podsup/manifests/" + name + ".yaml"}},
		Spec:   v1.PodSpec{NodeName: "node1"},
		Status: v1.PodStatus{Phase: v1.PodRunning, PodIP: "10.88.0.7"}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: c, Image: "busybox"})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, v1.ContainerStatus{Name: c, Ready: true,
			State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}})
	}
	return p
}

// writeLog writes lines as instance restart of a container of a pod writes
// them, through the logs package.
func (fx *fixture) writeLog(p *v1.Pod, container string, restart int, lines ...string) {
	fx.t.Helper()
	dir := logs.ContainerDir(fx.logDir, p.Namespace, p.Name, string(p.UID), container)
	w, err := logs.NewWriter(logs.FilePath(dir, restart))
	if err != nil {
		fx.t.Fatal(err)
	}
	out := w.Stream("stdout")
	for _, l := range lines {
		if _, err := io.WriteString(out, l+"\n"); err != nil {
			fx.t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		fx.t.Fatal(err)
	}
}

// result is what a command printed and how it ended.
type result struct {
	stdout, stderr string
	err            error
}

// code is the exit status the command would have.
func (r result) code() int {
	var ec cli.ExitCoder
	if errors.As(r.err, &ec) {
		return ec.ExitCode()
	}
	if r.err != nil {
		return 1
	}
	return 0
}

// run runs a podsup command against the fixture's socket.
func (fx *fixture) run(args ...string) result {
	return runCLI(context.Background(), nil, fx.args(args...)...)
}

// args is a command line against the fixture: the command, the flags
// that reach the fixture, then args[1:].
func (fx *fixture) args(args ...string) []string {
	out := append([]string{args[0], "--server", fx.server}, fx.serverArgs...)
	return append(out, args[1:]...)
}

// runCLI runs a command line of the client's commands in-process.
func runCLI(ctx context.Context, stdout io.Writer, args ...string) result {
	return runApp(ctx, nil, stdout, nil, args...)
}

// runApp runs a command line in-process with stdin, the client's
// commands and, for the streams, exec, attach and port-forward over the
// protocol of streams. What the command prints goes to stdout as well as
// to the result.
func runApp(ctx context.Context, stdin io.Reader, stdout io.Writer, streams *streamOptions, args ...string) result {
	// Locked buffers: client-go's copiers may still write after a stream
	// was cancelled.
	out, errOut := apitest.NewOutput(), apitest.NewOutput()
	var w io.Writer = out
	if stdout != nil {
		w = io.MultiWriter(out, stdout)
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	commands := []*cli.Command{PodsCommand(), DescribeCommand(), LogsCommand(), EventsCommand(), ApplyCommand(), DeleteCommand(), PortForwardCommand()}
	o := defaultStreams
	if streams != nil {
		o = *streams
	}
	commands = append(commands, execCommand(o), attachCommand(o))
	app := &cli.App{
		Name: "podsup", Reader: stdin, Writer: w, ErrWriter: errOut,
		ExitErrHandler: func(*cli.Context, error) {}, // the test reads the error
		Commands:       commands,
	}
	err := app.RunContext(ctx, append([]string{"podsup"}, args...))
	return result{stdout: out.String(), stderr: errOut.String(), err: err}
}
