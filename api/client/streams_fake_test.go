package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// The kubelet's streaming timeouts: long, so a busy machine never meets them.
const (
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

var (
	_ remotecommand.Executor    = (*fakeContainers)(nil)
	_ remotecommand.Attacher    = (*fakeContainers)(nil)
	_ portforward.PortForwarder = (*fakeContainers)(nil)
)

// fakeContainers is the runtime behind podsup's exec, attach and
// port-forward, served by the cri-streaming library as podsup's API
// serves it. Its containers run a small shell:
//
//	echo ARGS...   prints ARGS, one per line, to stdout
//	both           prints "out" to stdout, "err" to stderr
//	cat            copies stdin to stdout, then says "stdin closed" on stderr
//	exit N         exits with status N
//	shell          an interactive one: "$ " prompt, each line read is echoed
//	               back as "got: LINE", "exit N" ends it
//
// Attach runs shell in a container named tty, else says "attached" on
// stdout and stderr and runs cat if it has stdin. A port-forward greets
// with "port N" and echoes what it reads.
type fakeContainers struct {
	mu       sync.Mutex
	sessions []fakeSession
	ports    []int32
	requests []string      // method and Upgrade header of each stream request
	started  chan struct{} // size 1: a session started
}

// fakeSession is what one exec or attach saw.
type fakeSession struct {
	pod, container string
	cmd            []string
	tty            bool
	resizes        []remotecommand.TerminalSize
}

func newFakeContainers() *fakeContainers {
	return &fakeContainers{started: make(chan struct{}, 1)}
}

// handler serves exec, attach and port-forward at the kubelet's paths.
func (f *fakeContainers) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		opts, err := remotecommand.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommand.ServeExec(w, r, f, r.PathValue("pod"), "uid", r.PathValue("container"), r.URL.Query()["command"], opts,
			streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", func(w http.ResponseWriter, r *http.Request) {
		opts, err := remotecommand.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommand.ServeAttach(w, r, f, r.PathValue("pod"), "uid", r.PathValue("container"), opts,
			streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/portForward/{ns}/{pod}", func(w http.ResponseWriter, r *http.Request) {
		portforward.ServePortForward(w, r, f, r.PathValue("pod"), "uid", nil,
			streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, strings.TrimSpace(r.Method+" "+r.Header.Get("Upgrade")+" "+r.Header.Get("Authorization")))
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

// ExecInContainer runs the fake shell's command cmd.
func (f *fakeContainers) ExecInContainer(ctx context.Context, pod, _, container string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	defer f.watchResizes(f.begin(pod, container, cmd, tty), resize)()
	if len(cmd) == 0 {
		return errors.New("no command")
	}
	args := cmd[1:]
	switch cmd[0] {
	case "echo":
		for _, a := range args {
			fmt.Fprintln(out, a)
		}
	case "both":
		fmt.Fprintln(out, "out")
		fmt.Fprintln(errOut, "err")
	case "cat":
		return cat(in, out, errOut)
	case "exit":
		return exitStatus(args)
	case "shell":
		return shell(in, out)
	default:
		return fmt.Errorf("%s: command not found", cmd[0])
	}
	return nil
}

// AttachContainer runs the container named tty's shell, or a cat.
func (f *fakeContainers) AttachContainer(ctx context.Context, pod, _, container string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	defer f.watchResizes(f.begin(pod, container, nil, tty), resize)()
	if container == "tty" {
		return shell(in, out)
	}
	fmt.Fprintln(out, "attached")
	if errOut != nil {
		fmt.Fprintln(errOut, "attached")
	}
	if in == nil {
		return nil
	}
	return cat(in, out, errOut)
}

// PortForward greets with the port and echoes what it reads.
func (f *fakeContainers) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	f.mu.Lock()
	f.ports = append(f.ports, port)
	f.mu.Unlock()
	defer stream.Close()
	if _, err := fmt.Fprintf(stream, "port %d\n", port); err != nil {
		return err
	}
	_, err := io.Copy(stream, stream)
	return err
}

// begin records a session and returns its index.
func (f *fakeContainers) begin(pod, container string, cmd []string, tty bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions = append(f.sessions, fakeSession{pod: pod, container: container, cmd: cmd, tty: tty})
	select {
	case f.started <- struct{}{}:
	default:
	}
	return len(f.sessions) - 1
}

// watchResizes records the sizes the client sends until the session ends:
// the function it returns stops the watch and waits for it.
func (f *fakeContainers) watchResizes(i int, resize <-chan remotecommand.TerminalSize) (stop func()) {
	if resize == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case s, ok := <-resize:
				if !ok {
					return
				}
				f.mu.Lock()
				f.sessions[i].resizes = append(f.sessions[i].resizes, s)
				f.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// last is the latest session.
func (f *fakeContainers) last() fakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sessions) == 0 {
		return fakeSession{}
	}
	s := f.sessions[len(f.sessions)-1]
	s.resizes = append([]remotecommand.TerminalSize(nil), s.resizes...)
	return s
}

func (f *fakeContainers) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func cat(in io.Reader, out, errOut io.Writer) error {
	if in == nil {
		return errors.New("cat: no stdin")
	}
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if errOut != nil {
		fmt.Fprintln(errOut, "stdin closed")
	}
	return nil
}

// exitStatus is the error a runtime returns for a process that exited
// with a status: cri-streaming turns it into a NonZeroExitCode status.
func exitStatus(args []string) error {
	code := 0
	if len(args) > 0 {
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		code = n
	}
	if code == 0 {
		return nil
	}
	return utilexec.CodeExitError{Err: fmt.Errorf("exit status %d", code), Code: code}
}

// shell prompts, echoes each line back and ends on "exit N". Lines end in
// \r or \n: a terminal in raw mode sends \r for Enter.
func shell(in io.Reader, out io.Writer) error {
	if in == nil {
		return errors.New("shell: no stdin")
	}
	r := bufio.NewReader(in)
	for {
		fmt.Fprint(out, "$ ")
		var line strings.Builder
		for {
			b, err := r.ReadByte()
			if err != nil {
				return err
			}
			if b == '\r' || b == '\n' {
				break
			}
			line.WriteByte(b)
		}
		if cmd, ok := strings.CutPrefix(line.String(), "exit"); ok {
			return exitStatus(strings.Fields(cmd))
		}
		fmt.Fprintf(out, "got: %s\r\n", line.String())
	}
}
