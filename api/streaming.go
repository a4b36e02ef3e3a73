package api

import (
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

	"github.com/podsup/podsup/runtime"
)

// Streams runs the node API's streaming requests in pods, by pod key
// (namespace/name) and container name.
type Streams interface {
	// Target says whether a pod's container runs (or, for container "",
	// whether the pod has a sandbox to forward ports into), before a
	// stream is opened: an error wraps ErrNotFound or ErrNotRunning.
	Target(ctx context.Context, pod, container string) error
	// Exec runs cmd with the client's streams and returns its exit code.
	Exec(ctx context.Context, pod, container string, cmd []string, s runtime.StreamIO) (int, error)
	// Attach connects the client to the container's own process.
	Attach(ctx context.Context, pod, container string, s runtime.StreamIO) error
	// PortForward copies stream to and from a port of the pod.
	PortForward(ctx context.Context, pod string, port int32, stream io.ReadWriteCloser) error
}

// Errors of Streams.Target, answered 404 and 400.
var (
	ErrNotFound   = errors.New("not found")
	ErrNotRunning = errors.New("not running")
)

// StreamLimits bound the streaming requests.
type StreamLimits struct {
	// IdleTimeout closes a stream connection with no traffic for this
	// long (--streaming-connection-idle-timeout; the kubelet's 4 h).
	IdleTimeout time.Duration
	// PerPod caps the streams open to one pod at once.
	PerPod int
}

// DefaultStreamLimits are the kubelet's idle timeout and a cap that no
// interactive use reaches.
var DefaultStreamLimits = StreamLimits{IdleTimeout: 4 * time.Hour, PerPod: 32}

// streamCreationTimeout is how long a client has to open its streams
// after the upgrade, as the kubelet's.
const streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout

// streamRoutes adds the kubelet's streaming endpoints.
func (d Deps) streamRoutes(mux *http.ServeMux) {
	if d.Streams == nil {
		return
	}
	s := &streamer{Deps: d, open: map[string]int{}}
	for _, m := range []string{"GET", "POST"} { // GET: a WebSocket upgrade
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{container}", s.exec)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{container}", s.attach)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}", s.portForward)
	}
	mux.HandleFunc("POST /run/{namespace}/{pod}/{container}", s.run)
}

// streamer serves the streaming endpoints and counts the streams open to
// each pod.
type streamer struct {
	Deps
	mu   sync.Mutex
	open map[string]int // by pod key
}

// begin checks the target and takes one of the pod's stream slots; the
// caller calls end when ok. It has answered the request otherwise.
func (s *streamer) begin(w http.ResponseWriter, r *http.Request, withContainer bool) (key, container string, ok bool) {
	names := []string{r.PathValue("namespace"), r.PathValue("pod")}
	if withContainer {
		container = r.PathValue("container")
		names = append(names, container)
	}
	if !validNames(w, names...) {
		return "", "", false
	}
	ns, pod := names[0], names[1]
	key = ns + "/" + pod
	if err := s.Streams.Target(r.Context(), key, container); err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, ErrNotRunning):
			code = http.StatusBadRequest
		}
		writeError(w, code, err.Error())
		return "", "", false
	}
	limit := s.limits().PerPod
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key] >= limit {
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("pod %s has %d streams open, the most it may have: close one and retry", key, limit))
		return "", "", false
	}
	s.open[key]++
	return key, container, true
}

func (s *streamer) end(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key]--; s.open[key] <= 0 {
		delete(s.open, key)
	}
}

func (s *streamer) limits() StreamLimits {
	l := s.StreamLimits
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultStreamLimits.IdleTimeout
	}
	if l.PerPod <= 0 {
		l.PerPod = DefaultStreamLimits.PerPod
	}
	return l
}

func (s *streamer) exec(w http.ResponseWriter, r *http.Request) {
	cmd := r.URL.Query()["command"]
	if len(cmd) == 0 {
		writeError(w, http.StatusBadRequest, "command: give the command to run, one command= parameter per word")
		return
	}
	s.remoteCommand(w, r, func(key, container string) streamFunc {
		return func(ctx context.Context, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
			code, err := s.Streams.Exec(ctx, key, container, cmd, streamIO(ctx, in, out, errOut, tty, resize))
			if err == nil && code != 0 {
				return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
			}
			return err
		}
	}, func(w http.ResponseWriter, r *http.Request, key, container string, opts *remotecommand.Options, run streamFunc) {
		remotecommand.ServeExec(w, r, execFunc(run), key, "", container, cmd, opts, s.limits().IdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	})
}

func (s *streamer) attach(w http.ResponseWriter, r *http.Request) {
	s.remoteCommand(w, r, func(key, container string) streamFunc {
		return func(ctx context.Context, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
			return s.Streams.Attach(ctx, key, container, streamIO(ctx, in, out, errOut, tty, resize))
		}
	}, func(w http.ResponseWriter, r *http.Request, key, container string, opts *remotecommand.Options, run streamFunc) {
		remotecommand.ServeAttach(w, r, attachFunc(run), key, "", container, opts, s.limits().IdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	})
}

// remoteCommand serves an exec or an attach: it checks the request, then
// runs the command on the streams of the protocol the client speaks, v5
// WebSockets here and the older protocols through serve.
func (s *streamer) remoteCommand(w http.ResponseWriter, r *http.Request, command func(key, container string) streamFunc,
	serve func(w http.ResponseWriter, r *http.Request, key, container string, opts *remotecommand.Options, run streamFunc)) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	key, container, ok := s.begin(w, r, true)
	if !ok {
		return
	}
	defer s.end(key)
	w, r = watchClient(w, r)
	if wantsStreamClose(r) {
		serveWebSocketV5(w, r, opts, s.limits().IdleTimeout, command(key, container))
		return
	}
	serve(w, r, key, container, opts, command(key, container))
}

func (s *streamer) portForward(w http.ResponseWriter, r *http.Request) {
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	key, _, ok := s.begin(w, r, false)
	if !ok {
		return
	}
	defer s.end(key)
	w, r = watchClient(w, r)
	forward := forwardFunc(func(ctx context.Context, port int32, stream io.ReadWriteCloser) error {
		return s.Streams.PortForward(ctx, key, port, stream)
	})
	portforward.ServePortForward(w, r, forward, key, "", opts, s.limits().IdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// maxRunOutput bounds what /run returns.
const maxRunOutput = 1 << 20

// run is the kubelet's /run: the command's output in the answer. cmd is
// split on spaces, as the kubelet splits it.
func (s *streamer) run(w http.ResponseWriter, r *http.Request) {
	cmd := strings.Fields(r.URL.Query().Get("cmd"))
	if len(cmd) == 0 {
		writeError(w, http.StatusBadRequest, "cmd: give the command to run")
		return
	}
	key, container, ok := s.begin(w, r, true)
	if !ok {
		return
	}
	defer s.end(key)
	out := runtime.NewHeadBuffer(maxRunOutput)
	code, err := s.Streams.Exec(r.Context(), key, container, cmd, runtime.StreamIO{Stdout: out, Stderr: out})
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("run in %s/%s: %v", key, container, err))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Exit-Code", strconv.Itoa(code))
	if code != 0 {
		w.WriteHeader(http.StatusInternalServerError)
	}
	_, _ = w.Write(out.Bytes())
}

// streamFunc runs an exec or an attach on the streams the protocol opened.
type streamFunc func(ctx context.Context, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error

type execFunc streamFunc

func (f execFunc) ExecInContainer(ctx context.Context, _, _, _ string, _ []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	return f(ctx, in, out, errOut, tty, resize)
}

type attachFunc streamFunc

func (f attachFunc) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return f(ctx, in, out, errOut, tty, resize)
}

type forwardFunc func(ctx context.Context, port int32, stream io.ReadWriteCloser) error

func (f forwardFunc) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	return f(ctx, port, stream)
}

// streamIO turns the protocol's streams into the runtime's: nil streams
// stay nil (the protocol passes typed nils for streams not asked for).
func streamIO(ctx context.Context, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) runtime.StreamIO {
	s := runtime.StreamIO{TTY: tty}
	if in != nil {
		s.Stdin = in
	}
	if out != nil {
		s.Stdout = out
	}
	if errOut != nil {
		s.Stderr = errOut
	}
	if resize != nil {
		sizes := make(chan runtime.TerminalSize)
		s.Resize = sizes
		go func() { // ends when the protocol closes resize or the request ends
			defer close(sizes)
			for size := range resize {
				select {
				case sizes <- runtime.TerminalSize{Width: size.Width, Height: size.Height}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return s
}
