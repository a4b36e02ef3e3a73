// Package client is podsup's command line for a running podsup: it reads
// the API and prints what it finds the way kubectl would, and pushes
// manifests through it.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// Limits on what the client reads from a server: a JSON answer (a long pod
// list), and an error answer. maxResponse is a variable so tests can
// shorten it: reading 64 MiB takes long enough, on a busy machine, to race
// a request's timeout.
var maxResponse = 64 << 20

const maxErrorResponse = 1 << 20

// endpoint is one place podsup may answer.
type endpoint struct {
	display string // as a user writes it: unix:///run/podsup/podsup.sock
	base    string // what request paths are appended to
	http    *http.Client
	// readOnly is the read-only port tried by default: it serves only pods
	// and their status, so requests for the rest skip it.
	readOnly bool
	// dial connects to podsup: to the admin socket when unix, else over
	// TCP, TLS being the caller's (with tls) for https.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	unix bool
	tls  *tls.Config
}

// Client talks to podsup's API. Its endpoints are tried in order until one
// answers; from then on only that one is used, so every request of a command
// goes to the same podsup.
type Client struct {
	endpoints []endpoint
	token     string
	// timeout bounds a request that is not a stream (a follow or a watch).
	timeout time.Duration
	// tlsFiles are the TLS flags, for exec, attach and port-forward.
	tlsFiles rest.TLSClientConfig
	// failures are why endpoints did not answer, the latest one each.
	failures []failure
}

type failure struct {
	endpoint string
	err      error
}

// noteFailure records why an endpoint did not answer, replacing what it
// said before, so a watch that retries does not grow the list.
func (c *Client) noteFailure(endpoint string, err error) {
	for i := range c.failures {
		if c.failures[i].endpoint == endpoint {
			c.failures[i].err = err
			return
		}
	}
	c.failures = append(c.failures, failure{endpoint, err})
}

// request is one call to the API.
type request struct {
	method string
	path   string // escaped
	query  url.Values
	body   []byte
	// full marks the routes only the admin socket and the authenticated
	// port serve.
	full bool
}

// StatusError is an error answer from podsup: its HTTP code and the
// message of its Status body.
type StatusError struct {
	Code    int
	Message string
}

// Error returns podsup's message.
func (e *StatusError) Error() string { return e.Message }

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// ErrUnreachable is returned when no endpoint answered.
var ErrUnreachable = errors.New("cannot reach podsup")

// do sends r to the first endpoint that answers and returns its response
// when it is a success. The caller closes the body.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	skipped := false // the read-only port, for a route it does not serve
	for i, ep := range c.endpoints {
		if r.full && ep.readOnly {
			skipped = true
			continue
		}
		req, err := c.newRequest(ctx, ep, r)
		if err != nil {
			return nil, err
		}
		resp, err := ep.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.noteFailure(ep.display, unwrapURLError(err))
			continue
		}
		c.endpoints = c.endpoints[i : i+1]
		if resp.StatusCode/100 != 2 {
			defer resp.Body.Close()
			return nil, readStatusError(resp, ep)
		}
		return resp, nil
	}
	return nil, c.unreachable(r, skipped)
}

func (c *Client) newRequest(ctx context.Context, ep endpoint, r request) (*http.Request, error) {
	u := ep.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", ep.display, err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// unreachable says what was tried and why it failed.
func (c *Client) unreachable(r request, skipped bool) error {
	var whys []string
	for _, f := range c.failures {
		whys = append(whys, fmt.Sprintf("%s: %v", f.endpoint, f.err))
	}
	why := strings.Join(whys, "; ")
	if skipped {
		return fmt.Errorf("%w for %s: it is served by the admin socket %s (as root) or the authenticated port (--server https://HOST:10250); tried %s",
			ErrUnreachable, r.path, DefaultSocket, why)
	}
	return fmt.Errorf("%w: %s; is it running? give --server to name where it listens", ErrUnreachable, why)
}

// unwrapURLError drops the URL from a transport error: for the admin
// socket it is a made-up one.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readStatusError turns an error answer into a StatusError with the
// message of its Status body, or what the body says when it is not one.
func readStatusError(resp *http.Response, ep endpoint) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorResponse))
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		return &StatusError{Code: resp.StatusCode, Message: st.Message}
	}
	msg := fmt.Sprintf("%s answered %s", ep.display, resp.Status)
	if text := strings.TrimSpace(string(body)); text != "" {
		msg += ": " + text
	}
	if resp.StatusCode == http.StatusNotFound {
		msg += " (a read-only port serves only pods and their status: give --server the admin socket or the authenticated port)"
	}
	return &StatusError{Code: resp.StatusCode, Message: msg}
}

// getJSON decodes the answer to a GET into v.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, full bool, v any) error {
	return c.call(ctx, request{method: http.MethodGet, path: path, query: query, full: full}, v)
}

// call sends r and decodes its answer into v, within the client's timeout.
func (c *Client) call(ctx context.Context, r request, v any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxResponse)+1))
	if err != nil {
		return fmt.Errorf("read the answer to %s: %w", r.path, err)
	}
	if len(body) > maxResponse {
		return fmt.Errorf("the answer to %s is larger than %d bytes", r.path, maxResponse)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode the answer to %s: %w", r.path, err)
	}
	return nil
}

// stream sends a GET with no timeout, for a follow or a watch that lasts
// until ctx ends. The caller closes the body.
func (c *Client) stream(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	return c.do(ctx, request{method: http.MethodGet, path: path, query: query, full: true})
}
