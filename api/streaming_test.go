package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/runtime"
)

// fakeStreams runs "echo-exit N" commands: stdin copied to stdout, "err"
// on stderr, exit code N. A "block" command waits for release or for its
// client to go, and reports which on ended.
type fakeStreams struct {
	started chan struct{} // a block command started
	release chan struct{}
	ended   chan error // how a block command ended: nil released, or ctx's error
}

func newFakeStreams() *fakeStreams {
	return &fakeStreams{started: make(chan struct{}, 8), release: make(chan struct{}), ended: make(chan error, 8)}
}

func (f *fakeStreams) Target(_ context.Context, pod, container string) error {
	switch {
	case pod != "default/web":
		return fmt.Errorf("pod %s: %w", pod, ErrNotFound)
	case container == "stopped":
		return fmt.Errorf("container %q of pod %s is %w", container, pod, ErrNotRunning)
	case container != "" && container != "main":
		return fmt.Errorf("container %q in pod %s: %w", container, pod, ErrNotFound)
	}
	return nil
}

func (f *fakeStreams) Exec(ctx context.Context, _, _ string, cmd []string, s runtime.StreamIO) (int, error) {
	if cmd[0] == "block" {
		f.started <- struct{}{}
		select {
		case <-f.release:
			f.ended <- nil
		case <-ctx.Done():
			f.ended <- ctx.Err()
		}
		return 0, nil
	}
	if s.Stdin != nil {
		if _, err := io.Copy(s.Stdout, s.Stdin); err != nil {
			return -1, err
		}
	}
	if s.Stderr != nil {
		fmt.Fprint(s.Stderr, "err")
	}
	code, _ := strconv.Atoi(cmd[len(cmd)-1])
	return code, nil
}

func (f *fakeStreams) Attach(context.Context, string, string, runtime.StreamIO) error {
	return errors.New("not in this test")
}

func (f *fakeStreams) PortForward(context.Context, string, int32, io.ReadWriteCloser) error {
	return errors.New("not in this test")
}

func streamServer(t *testing.T, f *fakeStreams, perPod int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(FullHandler(Deps{Streams: f, StreamLimits: StreamLimits{PerPod: perPod}}))
	t.Cleanup(srv.Close)
	return srv
}

// execute runs cmd through an executor made by newExec.
func execute(t *testing.T, ctx context.Context, ex remotecommand.Executor, stdin string) (string, string, error) {
	t.Helper()
	// Synchronised: a stream ended by its context returns before its copies.
	var out, errOut testenv.SyncBuffer
	opts := remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}
	if stdin != "" {
		opts.Stdin = strings.NewReader(stdin)
	}
	err := ex.StreamWithContext(ctx, opts)
	return out.String(), errOut.String(), err
}

func execURL(srv *httptest.Server, container string, stdin bool, cmd ...string) string {
	u := srv.URL + "/exec/default/web/" + container + "?output=1&error=1"
	if stdin {
		u += "&input=1"
	}
	for _, c := range cmd {
		u += "&command=" + c
	}
	return u
}

// executors make a client of each protocol for an exec URL of srv.
func executors(t *testing.T, srv *httptest.Server) map[string]func(url string) remotecommand.Executor {
	cfg := &rest.Config{Host: srv.URL}
	must := func(ex remotecommand.Executor, err error) remotecommand.Executor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
	return map[string]func(url string) remotecommand.Executor{
		"spdy": func(url string) remotecommand.Executor {
			return must(remotecommand.NewSPDYExecutor(cfg, "POST", mustURL(t, url)))
		},
		"websocket v5": func(url string) remotecommand.Executor {
			return must(remotecommand.NewWebSocketExecutor(cfg, "GET", url))
		},
	}
}

// TestExecProtocols: SPDY and v5 WebSockets carry stdin to its end, both
// outputs, and the exit code.
func TestExecProtocols(t *testing.T) {
	srv := streamServer(t, newFakeStreams(), 0)
	for name, newExec := range executors(t, srv) {
		t.Run(name, func(t *testing.T) {
			ex := newExec(execURL(srv, "main", true, "echo-exit", "3"))
			out, errOut, err := execute(t, context.Background(), ex, "hello\n")
			var exit utilexec.ExitError
			if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
				t.Errorf("error %v, want exit code 3", err)
			}
			if out != "hello\n" || errOut != "err" {
				t.Errorf("stdout %q, stderr %q; want stdin echoed and err", out, errOut)
			}
			ex = newExec(execURL(srv, "main", false, "echo-exit", "0"))
			if _, _, err := execute(t, context.Background(), ex, ""); err != nil {
				t.Errorf("exit 0: %v", err)
			}
		})
	}
}

// TestStreamRefusals: the target's errors and the per-pod cap are
// answered before any upgrade, with their codes.
func TestStreamRefusals(t *testing.T) {
	f := newFakeStreams()
	srv := streamServer(t, f, 1)
	for _, tc := range []struct {
		path string
		code int
		says string
	}{
		{"/exec/default/nope/main?output=1&command=x", http.StatusNotFound, "pod default/nope"},
		{"/exec/default/web/nope?output=1&command=x", http.StatusNotFound, `container \"nope\"`},
		{"/exec/default/web/stopped?output=1&command=x", http.StatusBadRequest, "not running"},
		{"/exec/default/web/main?output=1", http.StatusBadRequest, "command"},
		{"/exec/default/web/main?command=x", http.StatusBadRequest, "at least 1 of stdin, stdout, stderr"},
		{"/exec/default/web/main?output=1&command=x", http.StatusBadRequest, "upgrade"},
		{"/portForward/default/nope", http.StatusNotFound, "pod default/nope"},
		{"/exec/default/Web/main?output=1&command=x", http.StatusBadRequest, "lowercase"},
	} {
		resp, err := http.Post(srv.URL+tc.path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.says) {
			t.Errorf("POST %s: %d %s; want %d saying %q", tc.path, resp.StatusCode, body, tc.code, tc.says)
		}
	}

	// The one stream the pod may have is taken: the next is refused.
	ex, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: srv.URL}, "POST", mustURL(t, execURL(srv, "main", false, "block")))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := execute(t, context.Background(), ex, "")
		done <- err
	}()
	<-f.started
	resp, err := http.Post(execURL(srv, "main", false, "echo-exit", "0"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "1 streams open") {
		t.Errorf("a second stream: %d %s; want 429", resp.StatusCode, body)
	}
	close(f.release)
	if err := <-done; err != nil {
		t.Errorf("the first stream: %v", err)
	}
	if err := <-f.ended; err != nil {
		t.Errorf("the first command ended with %v, want released", err)
	}
	// The server lets the slot go once its handler returns, a moment after
	// the client has seen the end.
	if _, ok := testenv.Poll(time.Minute, func() bool {
		resp, err := http.Post(execURL(srv, "main", false, "echo-exit", "0"), "", nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusTooManyRequests
	}); !ok {
		t.Fatal("the pod's stream slot was not released when its stream ended")
	}
	ex, _ = remotecommand.NewSPDYExecutor(&rest.Config{Host: srv.URL}, "POST", mustURL(t, execURL(srv, "main", false, "echo-exit", "0")))
	if _, _, err := execute(t, context.Background(), ex, ""); err != nil {
		t.Errorf("a stream once the first ended: %v", err)
	}
}

// TestExecClientGone: when the client goes, the command's context ends,
// over either protocol: the runtime kills it.
func TestExecClientGone(t *testing.T) {
	f := newFakeStreams()
	srv := streamServer(t, f, 0)
	for name, newExec := range executors(t, srv) {
		t.Run(name, func(t *testing.T) {
			ex := newExec(execURL(srv, "main", false, "block"))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _, _ = execute(t, ctx, ex, "")
			}()
			<-f.started
			cancel()
			<-done
			if err := <-f.ended; !errors.Is(err, context.Canceled) {
				t.Errorf("the command ended with %v, want its context cancelled", err)
			}
		})
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestStreamIdleTimeout: a stream with no traffic for the idle timeout is
// closed, and its command with it, over either protocol.
func TestStreamIdleTimeout(t *testing.T) {
	f := newFakeStreams()
	srv := httptest.NewServer(FullHandler(Deps{Streams: f, StreamLimits: StreamLimits{IdleTimeout: 200 * time.Millisecond}}))
	t.Cleanup(srv.Close)
	for name, newExec := range executors(t, srv) {
		t.Run(name, func(t *testing.T) {
			ex := newExec(execURL(srv, "main", false, "block"))
			done := make(chan error, 1)
			go func() {
				_, _, err := execute(t, context.Background(), ex, "")
				done <- err
			}()
			// The idle timer is the library's, on the wall clock: on a
			// busy machine it may close the connection before the command
			// starts. Whichever wins, the client's stream ends; a command
			// that started was cancelled, never left running.
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("an idle stream was not closed within a minute")
			}
			select {
			case <-f.started:
				if err := <-f.ended; !errors.Is(err, context.Canceled) {
					t.Errorf("the command ended with %v, want its context cancelled by the idle close", err)
				}
			default:
				t.Log("the connection closed before the command started")
			}
		})
	}
}
