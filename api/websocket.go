package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// wantsStreamClose reports a WebSocket request for v5.channel.k8s.io, the
// remote command protocol kubectl speaks by default since 1.31, whose
// CLOSE signal ends the command's stdin. The kubelet's streaming package
// serves WebSockets only up to v4 (the apiserver translates v5 to SPDY for
// it); podsup serves v5 itself, for clients that reach it directly.
func wantsStreamClose(r *http.Request) bool {
	if !wsstream.IsWebSocketRequest(r) {
		return false
	}
	for _, h := range r.Header.Values(wsstream.WebSocketProtocolHeader) {
		for _, p := range strings.Split(h, ",") {
			if strings.TrimSpace(p) == remotecommand.StreamProtocolV5Name {
				return true
			}
		}
	}
	return false
}

// The channels of the remote command protocol over WebSocket.
const (
	stdinChannel = iota
	stdoutChannel
	stderrChannel
	errorChannel
	resizeChannel
)

// serveWebSocketV5 runs an exec or an attach over a v5.channel.k8s.io
// WebSocket, framed by the apimachinery streaming package, and writes its
// outcome on the error channel as a Status, as v4 does.
func serveWebSocketV5(w http.ResponseWriter, r *http.Request, opts *remotecommand.Options, idle time.Duration, run streamFunc) {
	channel := func(want bool, t wsstream.ChannelType) wsstream.ChannelType {
		if want {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{
		channel(opts.Stdin, wsstream.ReadChannel), channel(opts.Stdout, wsstream.WriteChannel), channel(opts.Stderr, wsstream.WriteChannel),
		wsstream.WriteChannel, channel(opts.TTY, wsstream.ReadChannel),
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remotecommand.StreamProtocolV5Name: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(idle)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		return // Open answered the client
	}
	defer conn.Close()
	// The client waits for a first message to know the streams are open.
	first := errorChannel
	if opts.Stdout {
		first = stdoutChannel
	} else if opts.Stderr {
		first = stderrChannel
	}
	_, _ = streams[first].Write(nil)
	ctx := r.Context()
	var in io.Reader
	var out, errOut io.WriteCloser
	if opts.Stdin {
		in = streams[stdinChannel]
	}
	if opts.Stdout {
		out = streams[stdoutChannel]
	}
	if opts.Stderr {
		errOut = streams[stderrChannel]
	}
	var resize chan remotecommand.TerminalSize
	if opts.TTY {
		resize = make(chan remotecommand.TerminalSize)
		go decodeSizes(ctx, streams[resizeChannel], resize) // ends with the stream or the request
	}
	err = run(ctx, in, out, errOut, opts.TTY, resize)
	body, _ := json.Marshal(outcome(err))
	_, _ = streams[errorChannel].Write(body)
}

// decodeSizes reads terminal sizes as JSON until the stream ends.
func decodeSizes(ctx context.Context, stream io.Reader, sizes chan<- remotecommand.TerminalSize) {
	defer close(sizes)
	dec := json.NewDecoder(stream)
	for {
		var size remotecommand.TerminalSize
		if err := dec.Decode(&size); err != nil {
			return
		}
		select {
		case sizes <- size:
		case <-ctx.Done():
			return
		}
	}
}

// outcome is the Status that ends a remote command: success, the exit
// code of a command that failed, or the error.
func outcome(err error) metav1.Status {
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	if err == nil {
		return st
	}
	st.Status, st.Message = metav1.StatusFailure, err.Error()
	var exit utilexec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		st.Reason = remotecommand.NonZeroExitCodeReason
		st.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: remotecommand.ExitCodeCauseType, Message: fmt.Sprint(exit.ExitStatus())}}}
		return st
	}
	st.Reason, st.Code = metav1.StatusReasonInternalError, http.StatusInternalServerError
	return st
}

// watchClient lets a streaming handler know when its client goes: the
// request's context ends when the upgraded connection fails or closes
// (an http.Server stops watching a connection once it is hijacked). It
// also clears the deadlines the server set for reading the request, which
// would otherwise cut every stream after the read timeout.
func watchClient(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	return &hijackWatcher{ResponseWriter: w, cancel: cancel}, r.WithContext(ctx)
}

// hijackWatcher is a ResponseWriter whose hijacked connection cancels a
// context when it fails or closes. It has no Unwrap on purpose: the
// streaming packages look for the innermost writer to hijack.
type hijackWatcher struct {
	http.ResponseWriter
	cancel context.CancelFunc
}

func (h *hijackWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be upgraded")
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return &watchedConn{Conn: c, cancel: h.cancel}, rw, nil
}

func (h *hijackWatcher) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// watchedConn cancels when a read fails or it is closed.
type watchedConn struct {
	net.Conn
	cancel context.CancelFunc
	once   sync.Once
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(c.cancel)
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.once.Do(c.cancel)
	return c.Conn.Close()
}
