package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/api/apitest"
)

// streamFixture is a podsup API whose exec, attach and port-forward are
// served by cri-streaming over fake containers. Its pods: web-node1
// (containers main and side, main the default), term-node1 (a container
// tty with a TTY) and done-node1 (Succeeded).
type streamFixture struct {
	*fixture
	fake *fakeContainers
}

func newStreamFixture(t *testing.T, on listenOn) *streamFixture {
	t.Helper()
	fake := newFakeContainers()
	fx := &streamFixture{fixture: newFixtureWith(t, fake.handler(), on), fake: fake}
	web := staticPod("default", "web", "main", "side")
	web.Annotations[defaultContainerAnnotation] = "main"
	term := staticPod("default", "term", "tty")
	term.Spec.Containers[0].TTY, term.Spec.Containers[0].Stdin = true, true
	done := staticPod("default", "done", "main")
	done.Status.Phase = v1.PodSucceeded
	fx.pods.Set(web, term, done)
	return fx
}

// exec runs a command of the streams with stdin over the protocol o.
func (fx *streamFixture) exec(o streamOptions, stdin io.Reader, args ...string) result {
	return runApp(context.Background(), stdin, nil, &o, fx.args(args...)...)
}

var (
	forceSPDY = streamOptions{protocol: protocolSPDY}
	// forceWebSocketV4 is WebSocket as cri-streaming serves it: v4, which
	// cannot say that stdin ended; kubectl offers v5 only for that reason.
	forceWebSocketV4 = streamOptions{protocol: protocolWebSocket, wsProtocols: []string{"v5.channel.k8s.io", "v4.channel.k8s.io"}}
)

// TestExec: what a user checks of exec, over SPDY on a unix socket, the
// way the command line reaches the admin socket.
func TestExec(t *testing.T) {
	fx := newStreamFixture(t, onUnix)
	tests := []struct {
		name               string
		args               []string
		stdin              string
		wantOut, wantErr   string // the whole of stdout and stderr
		wantFail           string // in the error
		wantCode           int
		wantCmd            []string
		wantPod, wantCtr   string
		wantTTY, checkCall bool
	}{
		{name: "stdout and stderr apart", args: []string{"web", "--", "both"}, wantOut: "out\n", wantErr: "err\n",
			checkCall: true, wantCmd: []string{"both"}, wantPod: "web-node1", wantCtr: "main"},
		{name: "arguments kept whole", args: []string{"web", "-c", "side", "--", "echo", "a b", "-c", "--", ""}, wantOut: "a b\n-c\n--\n\n",
			checkCall: true, wantCmd: []string{"echo", "a b", "-c", "--", ""}, wantPod: "web-node1", wantCtr: "side"},
		{name: "flags before the pod", args: []string{"-c", "side", "-n", "default", "web", "--", "echo", "x"}, wantOut: "x\n",
			checkCall: true, wantCmd: []string{"echo", "x"}, wantPod: "web-node1", wantCtr: "side"},
		{name: "stdin piped, and its end reaches the container", args: []string{"-i", "web", "--", "cat"}, stdin: "one\ntwo\n",
			wantOut: "one\ntwo\n", wantErr: "stdin closed\n"},
		{name: "without -i no stdin", args: []string{"web", "--", "cat"}, stdin: "one\n",
			wantFail: "cat: no stdin", wantCode: 1},
		{name: "exit status", args: []string{"web", "--", "exit", "3"}, wantFail: "command terminated with exit code 3", wantCode: 3},
		{name: "exit status 1", args: []string{"web", "--", "exit", "1"}, wantFail: "command terminated with exit code 1", wantCode: 1},
		{name: "tty without a terminal", args: []string{"-it", "web", "--", "echo", "hi"}, stdin: "",
			wantOut: "hi\n", wantErr: "Unable to use a TTY - input is not a terminal or the right kind of file\n",
			checkCall: true, wantCmd: []string{"echo", "hi"}, wantPod: "web-node1", wantCtr: "main", wantTTY: false},
		{name: "tty without a terminal, quiet", args: []string{"web", "-i", "-t", "-q", "--", "echo", "hi"}, wantOut: "hi\n"},
		{name: "unknown pod", args: []string{"nope", "--", "echo"}, wantFail: "pod default/nope not found", wantCode: 1},
		{name: "unknown container", args: []string{"web", "-c", "nope", "--", "echo"}, wantFail: "container nope is not valid for pod web-node1", wantCode: 1},
		{name: "completed pod", args: []string{"done", "--", "echo"}, wantFail: "cannot exec a container in a completed pod; current phase is Succeeded", wantCode: 1},
		{name: "command not after --", args: []string{"web", "echo", "hi"}, wantFail: "podsup exec web -- echo hi", wantCode: 2},
		{name: "no command", args: []string{"web", "--"}, wantFail: "the command after --", wantCode: 2},
		{name: "no pod", args: nil, wantFail: "name a pod and a command", wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fx.exec(forceSPDY, strings.NewReader(tc.stdin), append([]string{"exec"}, tc.args...)...)
			if r.code() != tc.wantCode {
				t.Fatalf("exit %d (%v), want %d; stderr %q", r.code(), r.err, tc.wantCode, r.stderr)
			}
			if tc.wantFail != "" {
				if !strings.Contains(r.err.Error(), tc.wantFail) {
					t.Fatalf("error %q, want it to say %q", r.err, tc.wantFail)
				}
				return
			}
			if r.stdout != tc.wantOut || r.stderr != tc.wantErr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", r.stdout, r.stderr, tc.wantOut, tc.wantErr)
			}
			if !tc.checkCall {
				return
			}
			s := fx.fake.last()
			if s.pod != tc.wantPod || s.container != tc.wantCtr || !slices.Equal(s.cmd, tc.wantCmd) || s.tty != tc.wantTTY {
				t.Errorf("the container ran %q in %s/%s, tty %v; want %q in %s/%s, tty %v",
					s.cmd, s.pod, s.container, s.tty, tc.wantCmd, tc.wantPod, tc.wantCtr, tc.wantTTY)
			}
		})
	}
}

// TestExecProtocols: exec over each way of reaching podsup: SPDY and
// kubectl's default (WebSocket, else SPDY) on a unix socket, on http and
// on https with a CA and a token, and WebSocket forced on http and https.
func TestExecProtocols(t *testing.T) {
	auto := defaultStreams
	tests := []struct {
		name  string
		on    listenOn
		o     streamOptions
		stdin bool // stdin's end can be told
		// wantRequests are the stream requests' method and Upgrade header.
		wantRequests []string
	}{
		{name: "SPDY, unix socket", o: forceSPDY, stdin: true, wantRequests: []string{"POST SPDY/3.1"}},
		{name: "default, unix socket: SPDY only", o: auto, stdin: true, wantRequests: []string{"POST SPDY/3.1"}},
		{name: "SPDY, http", on: onHTTP, o: forceSPDY, stdin: true, wantRequests: []string{"POST SPDY/3.1"}},
		{name: "SPDY, https", on: onHTTPS, o: forceSPDY, stdin: true, wantRequests: []string{"POST SPDY/3.1"}},
		// cri-streaming serves no v5.channel.k8s.io: the WebSocket upgrade
		// is refused and SPDY takes over, as kubectl's does with a kubelet.
		{name: "default, http: WebSocket refused, then SPDY", on: onHTTP, o: auto, stdin: true, wantRequests: []string{"GET websocket", "POST SPDY/3.1"}},
		{name: "default, https: WebSocket refused, then SPDY", on: onHTTPS, o: auto, stdin: true, wantRequests: []string{"GET websocket", "POST SPDY/3.1"}},
		{name: "WebSocket v4, http", on: onHTTP, o: forceWebSocketV4, wantRequests: []string{"GET websocket"}},
		{name: "WebSocket v4, https", on: onHTTPS, o: forceWebSocketV4, wantRequests: []string{"GET websocket"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newStreamFixture(t, tc.on)
			check := func(args []string, stdin, wantOut, wantErr string, wantCode int) {
				t.Helper()
				r := fx.exec(tc.o, strings.NewReader(stdin), append([]string{"exec", "web"}, args...)...)
				if r.code() != wantCode || r.stdout != wantOut || r.stderr != wantErr {
					t.Errorf("%q: exit %d (%v), stdout %q, stderr %q; want %d, %q, %q", args, r.code(), r.err, r.stdout, r.stderr, wantCode, wantOut, wantErr)
				}
			}
			check([]string{"--", "both"}, "", "out\n", "err\n", 0)
			check([]string{"--", "exit", "42"}, "", "", "", 42)
			if tc.stdin {
				check([]string{"-i", "--", "cat"}, "piped\n", "piped\n", "stdin closed\n", 0)
			}
			var want []string
			for range 2 + btoi(tc.stdin) {
				want = append(want, tc.wantRequests...)
			}
			if tc.on == onHTTPS {
				for i := range want {
					want[i] += " Bearer " + fixtureToken
				}
			}
			if got := fx.fake.requestLog(); !slices.Equal(got, want) {
				t.Errorf("stream requests %q, want %q", got, want)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestExecWebSocketOverUnixSocket: client-go's WebSocket transport dials
// TCP only, so asked of the admin socket it says so.
func TestExecWebSocketOverUnixSocket(t *testing.T) {
	fx := newStreamFixture(t, onUnix)
	r := fx.exec(forceWebSocketV4, nil, "exec", "web", "--", "both")
	if r.code() != 1 || !strings.Contains(r.err.Error(), errWebSocketUnix.Error()) {
		t.Errorf("exit %d (%v), want 1 saying %q", r.code(), r.err, errWebSocketUnix)
	}
}

// TestStreamsNotOnReadOnlyPort: the read-only port serves no streams; the
// error says where they are served.
func TestStreamsNotOnReadOnlyPort(t *testing.T) {
	fx := newStreamFixture(t, onHTTP)
	c, err := newClient(connOptions{defaultSocket: shortSocketPath(t), defaultRO: fx.server})
	if err != nil {
		t.Fatal(err)
	}
	cmd := &command{ctx: context.Background(), client: c}
	if _, err := cmd.lookupPod(cmd.ctx, "web"); err != nil {
		t.Fatalf("the read-only port lists pods: %v", err)
	}
	_, err = c.streamTarget(context.Background(), "/exec/default/web-node1/main")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "served by the admin socket") {
		t.Errorf("error %v, want it to say where exec is served", err)
	}
}

// TestAttach: attach without a terminal, and the TTY rules of kubectl.
func TestAttach(t *testing.T) {
	fx := newStreamFixture(t, onUnix)
	const prompt = "If you don't see a command prompt, try pressing enter.\n"
	tests := []struct {
		name             string
		args             []string
		stdin            string
		wantOut, wantErr string
		wantTTY          bool
	}{
		{name: "output only", args: []string{"web"}, wantOut: "attached\n", wantErr: prompt + "attached\n"},
		{name: "stdin", args: []string{"web", "-i"}, stdin: "in\n", wantOut: "attached\nin\n", wantErr: prompt + "attached\nstdin closed\n"},
		{name: "quiet", args: []string{"web", "-q"}, wantOut: "attached\n", wantErr: "attached\n"},
		{name: "tty the container lacks", args: []string{"web", "-t"}, wantOut: "attached\n",
			wantErr: "Unable to use a TTY - container main did not allocate one\n" + prompt + "attached\n"},
		// The container has a TTY, so a TTY is asked for as kubectl does;
		// stdin is no terminal, so there is none, with the warning.
		{name: "container with a tty", args: []string{"term", "-i"}, stdin: "ls\nexit\n", wantOut: "$ got: ls\r\n$ ",
			wantErr: "Unable to use a TTY - input is not a terminal or the right kind of file\n" + prompt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fx.exec(forceSPDY, strings.NewReader(tc.stdin), append([]string{"attach"}, tc.args...)...)
			if r.err != nil {
				t.Fatalf("attach failed: %v; stderr %q", r.err, r.stderr)
			}
			if r.stdout != tc.wantOut || r.stderr != tc.wantErr {
				t.Errorf("stdout %q, stderr %q; want %q, %q", r.stdout, r.stderr, tc.wantOut, tc.wantErr)
			}
			if s := fx.fake.last(); s.tty != tc.wantTTY {
				t.Errorf("the server saw tty %v, want %v", s.tty, tc.wantTTY)
			}
		})
	}
	r := fx.exec(forceSPDY, nil, "attach", "nope")
	if r.code() != 1 || !strings.Contains(r.err.Error(), "pod default/nope not found") {
		t.Errorf("unknown pod: exit %d (%v), want 1, not found", r.code(), r.err)
	}
}

// TestStreamsEndOnCtrlC: a podsup that never answers a stream's upgrade
// does not keep exec or port-forward from ending on Ctrl-C, with status 0.
// Not WebSocket: gorilla/websocket reads the answer to its handshake
// whatever the context says, so the first Ctrl-C cannot end that wait (the
// second one kills podsup).
func TestStreamsEndOnCtrlC(t *testing.T) {
	for _, tc := range []struct {
		name string
		on   listenOn
		o    streamOptions
		args []string
	}{
		{name: "exec, unix socket", on: onUnix, o: defaultStreams, args: []string{"exec", "web", "--", "both"}},
		{name: "exec, https, SPDY", on: onHTTPS, o: forceSPDY, args: []string{"exec", "web", "--", "both"}},
		{name: "port-forward, unix socket", on: onUnix, o: defaultStreams, args: []string{"port-forward", "web", ":80"}},
		{name: "port-forward, https", on: onHTTPS, o: defaultStreams, args: []string{"port-forward", "web", ":80"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered := make(chan struct{}, 1)
			silent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-r.Context().Done() // the client went away
			})
			fx := newFixtureWith(t, silent, tc.on)
			fx.pods.Set(staticPod("default", "web", "main"))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan result, 1) // buffered: the command never blocks on exit
			go func() { done <- runApp(ctx, nil, nil, &tc.o, fx.args(tc.args...)...) }()
			apitest.Await(t, entered, "the stream request")
			cancel()
			if r := apitest.Await(t, done, "the command to end"); r.err != nil {
				t.Errorf("Ctrl-C: %v, want status 0", r.err)
			}
		})
	}
}
