package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	apistream "k8s.io/apimachinery/pkg/util/httpstream"
	spdystream "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"
)

// streamProtocol is how exec and attach reach podsup.
type streamProtocol int

const (
	// protocolAuto is kubectl's choice since 1.31: WebSocket, and SPDY when
	// the server refuses the upgrade. Over a unix socket, SPDY only: see
	// streamTarget.webSocket.
	protocolAuto streamProtocol = iota
	protocolSPDY
	protocolWebSocket
)

// spdyPingPeriod keeps an idle SPDY connection alive through proxies, as
// client-go's own SPDY transport does.
const spdyPingPeriod = 5 * time.Second

// errWebSocketUnix is a WebSocket asked of a unix socket.
var errWebSocketUnix = errors.New("client-go's WebSocket transport dials TCP only: it cannot reach a unix socket")

// streamTarget is the podsup a stream (exec, attach, port-forward) goes
// to: the endpoint that answered the pod lookup, in the shapes client-go's
// streaming packages take.
type streamTarget struct {
	ctx context.Context // the command's: ends the stream's connections
	ep  endpoint
	cfg *rest.Config // host, token and TLS files
}

// streamTarget is where the stream of path goes: the endpoint that
// answered so far, unless it is the read-only port, which serves no
// streams.
func (c *Client) streamTarget(ctx context.Context, path string) (streamTarget, error) {
	for _, ep := range c.endpoints {
		if ep.readOnly {
			continue
		}
		cfg := &rest.Config{Host: ep.base, BearerToken: c.token, TLSClientConfig: c.tlsFiles}
		return streamTarget{ctx: ctx, ep: ep, cfg: cfg}, nil
	}
	return streamTarget{}, c.unreachable(request{path: path}, true)
}

// url is path and query on the target.
func (t streamTarget) url(path string, query url.Values) (*url.URL, error) {
	u, err := url.Parse(t.ep.base + path)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", t.ep.display, err)
	}
	u.RawQuery = query.Encode()
	return u, nil
}

// spdy is the round tripper and upgrader of a SPDY stream. client-go's
// spdy.RoundTripperFor dials TCP whatever rest.Config.Dial says, and its
// dial and handshake take no context (a port-forward's none at all). So
// SPDY gets an upgrade transport that dials podsup as the other commands
// do, the admin socket included, and closes the connection when the
// command's context ends: Ctrl-C ends a stream even while it is being set
// up. Unlike kubectl's, this transport goes through no HTTPS_PROXY.
func (t streamTarget) spdy() (http.RoundTripper, spdy.Upgrader, error) {
	up, err := spdystream.NewRoundTripperWithConfig(spdystream.RoundTripperConfig{
		PingPeriod:       spdyPingPeriod,
		UpgradeTransport: &http.Transport{DialContext: dialUntil(t.ctx, t.ep.dial), TLSClientConfig: t.ep.tls},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("SPDY transport for %s: %w", t.ep.display, err)
	}
	rt, err := rest.HTTPWrappersForConfig(t.cfg, up) // the token
	if err != nil {
		return nil, nil, fmt.Errorf("SPDY transport for %s: %w", t.ep.display, err)
	}
	return rt, up, nil
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialUntil is dial with its connections, and the dial itself, ended when
// ctx ends.
func dialUntil(ctx context.Context, dial dialFunc) dialFunc {
	return func(dctx context.Context, network, addr string) (net.Conn, error) {
		dctx, cancel := context.WithCancel(dctx)
		defer cancel()
		defer context.AfterFunc(ctx, cancel)()
		conn, err := dial(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &closeOnDone{Conn: conn, stop: context.AfterFunc(ctx, func() { conn.Close() })}, nil
	}
}

// closeOnDone is a connection closed when a context ends, or before.
type closeOnDone struct {
	net.Conn
	stop func() bool // the close on the context's end, no longer needed once closed
}

func (c *closeOnDone) Close() error {
	c.stop()
	return c.Conn.Close()
}

// executor runs an exec or attach at path with query over proto.
// wsProtocols are the WebSocket subprotocols offered: kubectl offers
// v5.channel.k8s.io only, since a server of an older one cannot be told
// that stdin ended.
func (t streamTarget) executor(path string, query url.Values, proto streamProtocol, wsProtocols []string) (remotecommand.Executor, error) {
	u, err := t.url(path, query)
	if err != nil {
		return nil, err
	}
	newSPDY := func() (remotecommand.Executor, error) {
		rt, up, err := t.spdy()
		if err != nil {
			return nil, err
		}
		return remotecommand.NewSPDYExecutorForTransports(rt, up, http.MethodPost, u)
	}
	// WebSocket's handshake is a GET (RFC 6455 4.1), as kubectl sends it.
	newWebSocket := func() (remotecommand.Executor, error) {
		if t.ep.unix {
			return nil, fmt.Errorf("%s: %w", t.ep.display, errWebSocketUnix)
		}
		return remotecommand.NewWebSocketExecutorForProtocols(t.cfg, http.MethodGet, u.String(), wsProtocols...)
	}
	switch {
	case proto == protocolSPDY, proto == protocolAuto && t.ep.unix:
		return newSPDY()
	case proto == protocolWebSocket:
		return newWebSocket()
	}
	ws, err := newWebSocket()
	if err != nil {
		return nil, err
	}
	sp, err := newSPDY()
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, sp, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// portForwardDialer opens the SPDY connection of a port-forward at path.
// client-go's port-forward speaks SPDY to the kubelet's API; its
// WebSocket tunnel is the apiserver's, which the kubelet does not serve.
func (t streamTarget) portForwardDialer(path string) (apistream.Dialer, error) {
	u, err := t.url(path, nil)
	if err != nil {
		return nil, err
	}
	rt, up, err := t.spdy()
	if err != nil {
		return nil, err
	}
	return spdy.NewDialer(up, &http.Client{Transport: rt}, http.MethodPost, u), nil
}
