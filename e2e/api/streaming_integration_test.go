//go:build integration

package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	streamspdy "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/utils/exec"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

const streamPods = `apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: podsup.test/busybox:1
    command: [sh, -c, 'mkdir -p /tmp/www && echo hello-pf > /tmp/www/index.html && httpd -p 8080 -h /tmp/www; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done']
  - name: reader
    image: podsup.test/busybox:1
    stdin: true
    stdinOnce: true
    command: [sh, -c, 'while read line; do echo "got $line"; done; echo "stdin closed"; sleep 100000']
  - name: term
    image: podsup.test/busybox:1
    stdin: true
    tty: true
    command: [sh]
`

// streamEnv is a podsup running streamPods, with an admin socket and a
// token for the authenticated port.
type streamEnv struct {
	*harness.Env
	token string
}

func newStreamEnv(t *testing.T) *streamEnv {
	e := harness.NewEnv(t)
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(tokens, []byte("stream-token,streamer,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Write("shell.yaml", streamPods)
	e.Start("--token-auth-file", tokens)
	e.WaitPod("shell", "running", func(p v1.Pod) bool {
		for _, c := range []string{"main", "reader", "term"} {
			if harness.ContainerStatus(p, c).State.Running == nil {
				return false
			}
		}
		return true
	})
	return &streamEnv{Env: e, token: "stream-token"}
}

// socketSPDY is an SPDY round tripper to the admin socket.
func (e *streamEnv) socketSPDY(t *testing.T) (http.RoundTripper, spdy.Upgrader) {
	t.Helper()
	upgrade := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.Socket)
	}}
	rt, err := streamspdy.NewRoundTripperWithConfig(streamspdy.RoundTripperConfig{UpgradeTransport: upgrade})
	if err != nil {
		t.Fatal(err)
	}
	return rt, rt
}

// execSocket runs an exec over SPDY on the admin socket.
func (e *streamEnv) execSocket(t *testing.T, ctx context.Context, path string, opts remotecommand.StreamOptions) error {
	t.Helper()
	rt, up := e.socketSPDY(t)
	u, _ := url.Parse("http://podsup" + path)
	ex, err := remotecommand.NewSPDYExecutorForTransports(rt, up, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	return ex.StreamWithContext(ctx, opts)
}

// execWebSocket runs an exec over a v5.channel.k8s.io WebSocket on the
// authenticated port.
func (e *streamEnv) execWebSocket(t *testing.T, ctx context.Context, path string, opts remotecommand.StreamOptions) error {
	t.Helper()
	cfg := &rest.Config{Host: "https://" + e.Secure, BearerToken: e.token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	ex, err := remotecommand.NewWebSocketExecutor(cfg, "GET", "https://"+e.Secure+path)
	if err != nil {
		t.Fatal(err)
	}
	return ex.StreamWithContext(ctx, opts)
}

func execPath(container string, tty bool, stdin bool, cmd ...string) string {
	q := url.Values{"command": cmd, "output": {"1"}}
	if !tty {
		q.Set("error", "1")
	}
	if tty {
		q.Set("tty", "1")
	}
	if stdin {
		q.Set("input", "1")
	}
	return "/exec/default/shell-node1/" + container + "?" + q.Encode()
}

func exitCode(err error) int {
	var exit utilexec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitStatus()
	}
	return -1
}

// TestExec runs commands in a running container through the node API as
// kubectl would: output and exit codes over SPDY and WebSocket, stdin to
// its end, a terminal and its size, and a command killed when its client
// goes away.
func TestExec(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), harness.Patience)
	defer cancel()

	type transport struct {
		name string
		exec func(*testing.T, context.Context, string, remotecommand.StreamOptions) error
	}
	for _, tr := range []transport{{"spdy on the admin socket", e.execSocket}, {"websocket v5 on the authenticated port", e.execWebSocket}} {
		t.Run(tr.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := tr.exec(t, ctx, execPath("main", false, false, "sh", "-c", "echo out; echo err >&2; exit 3"), remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
			if exitCode(err) != 3 || out.String() != "out\n" || errOut.String() != "err\n" {
				t.Errorf("exit %d (%v), stdout %q, stderr %q; want exit 3, out, err", exitCode(err), err, out.String(), errOut.String())
			}
			out.Reset()
			err = tr.exec(t, ctx, execPath("main", false, true, "sh", "-c", "cat; echo done"), remotecommand.StreamOptions{Stdin: strings.NewReader("hello\nworld\n"), Stdout: &out, Stderr: io.Discard})
			if err != nil || out.String() != "hello\nworld\ndone\n" {
				t.Errorf("stdin piped to cat: %v, output %q", err, out.String())
			}
		})
	}

	t.Run("terminal and its size", func(t *testing.T) {
		sizes := &sizeQueue{sizes: make(chan *remotecommand.TerminalSize, 1)}
		sizes.sizes <- &remotecommand.TerminalSize{Width: 111, Height: 33}
		defer sizes.stop()
		var out bytes.Buffer
		// The size is applied a moment after the start: wait for it.
		script := `while [ "$(stty size)" != "33 111" ]; do sleep 0.1; done; echo sized; [ -t 0 ] && echo a-terminal`
		err := e.execSocket(t, ctx, execPath("main", true, false, "sh", "-c", script), remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
		if err != nil || !strings.Contains(out.String(), "sized") || !strings.Contains(out.String(), "a-terminal") {
			t.Errorf("exec -t: %v, output %q", err, out.String())
		}
	})

	t.Run("a command whose client goes away is killed", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		started := &signalWriter{match: "started", seen: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			done <- e.execSocket(t, cctx, execPath("main", false, false, "sh", "-c", "echo started; exec sleep 100001"), remotecommand.StreamOptions{Stdout: started, Stderr: io.Discard})
		}()
		select {
		case <-started.seen:
		case err := <-done:
			t.Fatalf("the exec ended before its command started: %v", err)
		case <-ctx.Done():
			t.Fatal("the command never started")
		}
		if n := e.processes(t, ctx, "sleep 100001"); n != 1 {
			t.Fatalf("%d processes running sleep 100001 while the client is there, want 1", n)
		}
		ccancel()
		<-done
		harness.WaitFor(t, "the command of a client that went away is killed", func() bool { return e.processes(t, ctx, "sleep 100001") == 0 })
	})
}

// processes counts the processes of the main container whose command
// line is cmd.
func (e *streamEnv) processes(t *testing.T, ctx context.Context, cmd string) int {
	t.Helper()
	var out bytes.Buffer
	if err := e.execSocket(t, ctx, execPath("main", false, false, "ps", "-o", "args"), remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatalf("ps: %v", err)
	}
	n := 0
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.TrimSpace(line) == cmd {
			n++
		}
	}
	return n
}

// TestAttach attaches to containers' own processes: output from then on,
// stdin that reaches the process, and stdinOnce closing it at the end.
func TestAttach(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), harness.Patience)
	defer cancel()
	attach := func(t *testing.T, ctx context.Context, container string, q string, opts remotecommand.StreamOptions) error {
		rt, up := e.socketSPDY(t)
		u, _ := url.Parse("http://podsup/attach/default/shell-node1/" + container + "?" + q)
		ex, err := remotecommand.NewSPDYExecutorForTransports(rt, up, "POST", u)
		if err != nil {
			t.Fatal(err)
		}
		return ex.StreamWithContext(ctx, opts)
	}

	t.Run("output", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		ticks := &signalWriter{match: "tick", seen: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			done <- attach(t, cctx, "main", "output=1&error=1", remotecommand.StreamOptions{Stdout: ticks, Stderr: io.Discard})
		}()
		select {
		case <-ticks.seen:
		case err := <-done:
			t.Fatalf("attach ended before any output: %v", err)
		case <-ctx.Done():
			t.Fatal("no output reached the attached client")
		}
		ccancel()
		<-done
	})

	t.Run("stdin, closed at its end with stdinOnce", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		got := &signalWriter{match: "stdin closed", seen: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			done <- attach(t, cctx, "reader", "input=1&output=1&error=1", remotecommand.StreamOptions{Stdin: strings.NewReader("one\ntwo\n"), Stdout: got, Stderr: io.Discard})
		}()
		select {
		case <-got.seen:
		case err := <-done:
			t.Fatalf("attach ended: %v; output %q, want the lines echoed and stdin closed", err, got.String())
		case <-ctx.Done():
			t.Fatalf("output %q, want the lines echoed and stdin closed", got.String())
		}
		ccancel()
		<-done
		if s := got.String(); !strings.Contains(s, "got one\ngot two\n") {
			t.Errorf("output %q, want each line echoed", s)
		}
		if tail := e.LogTail("shell", "reader"); !strings.Contains(tail, "stdin closed") {
			t.Errorf("the log's last line is %q, want the container's own output (stdin closed)", tail)
		}
	})
}

// TestPortForward reaches a port inside a pod's network namespace from a
// local port, several connections over one forward, and refuses a port
// nobody listens on. (kubectl, and client-go, then end the whole forward,
// as they do with a kubelet.)
func TestPortForward(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	rt, up := e.socketSPDY(t)
	u, _ := url.Parse("http://podsup/portForward/default/shell-node1")
	dialer := spdy.NewDialer(up, &http.Client{Transport: rt}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080", "0:8081"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	defer func() {
		close(stop)
		<-done
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward: %v", err)
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: harness.Patience}
	for i := range 3 { // each request is a new stream over the one connection
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
		if err != nil {
			t.Fatalf("request %d through the forward: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello-pf\n" {
			t.Errorf("request %d: %q, want the pod's page", i, body)
		}
	}
	if _, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[1].Local)); err == nil {
		t.Error("a request to a port nobody listens on succeeded")
	}
}

// TestStreamingRefusals: what cannot be streamed gets the status a
// kubelet gives and a message that says why, and nothing runs.
func TestStreamingRefusals(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	c := e.SocketClient()
	cases := []struct {
		name, method, path string
		code               int
		says               string
	}{
		{"unknown pod", "POST", "/exec/default/nope-node1/main?command=true&output=1", http.StatusNotFound, "nope-node1"},
		{"unknown container", "POST", "/exec/default/shell-node1/nope?command=true&output=1", http.StatusNotFound, `container \"nope\" in pod default/shell-node1`},
		{"no command", "POST", "/exec/default/shell-node1/main?output=1", http.StatusBadRequest, "command"},
		{"no stream", "POST", "/exec/default/shell-node1/main?command=true", http.StatusBadRequest, "stdin, stdout, stderr"},
		{"no upgrade", "POST", "/exec/default/shell-node1/main?command=true&output=1", http.StatusBadRequest, "upgrade"},
		{"port-forward to an unknown pod", "POST", "/portForward/default/nope-node1", http.StatusNotFound, "nope-node1"},
		{"run", "POST", "/run/default/shell-node1/main?cmd=echo+ran+here", http.StatusOK, "ran here"},
		{"run failing", "POST", "/run/default/shell-node1/main?cmd=sh+-c+false", http.StatusInternalServerError, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, err := c.Do(tc.method, tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(body, tc.says) {
				t.Errorf("%s %s: %d %q; want %d saying %q", tc.method, tc.path, code, body, tc.code, tc.says)
			}
		})
	}
	anon := e.SecureClient(nil, "")
	if code, body, err := anon.Do("POST", "/exec/default/shell-node1/main?command=true&output=1", nil); err != nil || code != http.StatusUnauthorized {
		t.Errorf("exec without credentials: %d %q %v; want 401", code, body, err)
	}
}

// sizeQueue hands out terminal sizes until stopped.
type sizeQueue struct {
	sizes chan *remotecommand.TerminalSize
	once  sync.Once
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize { return <-q.sizes }
func (q *sizeQueue) stop()                             { q.once.Do(func() { close(q.sizes) }) }

// signalWriter keeps what is written and closes seen once it contains
// match.
type signalWriter struct {
	testenv.SyncBuffer
	match string
	seen  chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.SyncBuffer.Write(p)
	if strings.Contains(w.String(), w.match) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// TestCLIStreams runs podsup's own exec and port-forward against a real
// podsup, as a user at a shell would: exit status, both outputs, piped
// stdin, an interactive terminal (through script(1), which gives the
// command a pseudo-terminal), and a forwarded port.
func TestCLIStreams(t *testing.T) {
	t.Parallel()
	se := newStreamEnv(t)
	e := &env{se.Env, t}
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), harness.Patience)
		defer cancel()
		cmd := exec.CommandContext(ctx, harness.Binary(), append([]string{args[0], "--server", "unix://" + e.Socket}, args[1:]...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("podsup %v: %v", args, err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}

	out, errOut, code := run("", "exec", "shell", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2; exit 4")
	if code != 4 || out != "out\n" || !strings.Contains(errOut, "err\n") {
		t.Errorf("exec: exit %d, stdout %q, stderr %q; want exit 4, out, err", code, out, errOut)
	}
	if out, _, code := run("abc\n", "exec", "-i", "shell", "--", "cat"); code != 0 || out != "abc\n" {
		t.Errorf("exec -i cat: exit %d, stdout %q; want the input back and exit 0", code, out)
	}
	if _, errOut, code := run("", "exec", "shell", "-c", "nope", "--", "true"); code != 1 || !strings.Contains(errOut, "container nope is not valid") {
		t.Errorf("exec in an unknown container: exit %d, stderr %q; want 1 naming it", code, errOut)
	}

	t.Run("exec -it under a terminal", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), harness.Patience)
		defer cancel()
		line := fmt.Sprintf("%s exec -it --server unix://%s shell -- sh", harness.Binary(), e.Socket)
		cmd := exec.CommandContext(ctx, "script", "-qefc", line, "/dev/null")
		cmd.Stdin = strings.NewReader("echo typed-$((6*7))\nexit 7\n")
		var out testenv.SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != 7 || !strings.Contains(out.String(), "typed-42") {
			t.Errorf("exec -it: %v, exit %d, output %q; want the typed command's output and exit 7", err, code, out.String())
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		lines, stop := e.cliStream("port-forward", "shell", ":8080")
		seen := waitLine(t, lines, "Forwarding from 127.0.0.1:")
		var port int
		if _, err := fmt.Sscanf(seen[len(seen)-1], "Forwarding from 127.0.0.1:%d -> 8080", &port); err != nil {
			t.Fatalf("port-forward printed %q: %v", seen, err)
		}
		client := &http.Client{Timeout: harness.Patience}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			t.Fatalf("through podsup port-forward: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello-pf\n" {
			t.Errorf("through podsup port-forward: %q, want the pod's page", body)
		}
		if err := stop(); err != nil {
			t.Errorf("Ctrl-C on port-forward: %v", err)
		}
	})
}
