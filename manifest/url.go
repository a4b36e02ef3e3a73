package manifest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"k8s.io/utils/clock"
)

// ErrNoDocument is a body that holds nothing. It never removes pods: only a
// valid document that declares none (an empty PodList) does.
var ErrNoDocument = errors.New("the body holds no document; keeping the current pods (serve an empty PodList to remove them)")

// URLSource polls one URL for manifests (--manifest-url). A failed poll of any
// kind keeps the pods of the last good one.
type URLSource struct {
	url     string
	origin  string // the URL without credentials or query, for messages
	header  http.Header
	every   time.Duration
	timeout time.Duration
	client  *http.Client
	static  Static
	clock   clock.WithTickerAndDelayedExecution // polls and request timeouts
	log     *slog.Logger

	etag, lastModified string
	lastGood           *Update  // the last snapshot read successfully
	lastSent           string   // fingerprint of what was last sent
	lastErr            string   // the last problem logged, so a lasting one is logged once
	goodSum, badSum    [32]byte // the last body that parsed, and the last that did not
	badErr             error    // why badSum did not parse
	parses             int      // bodies parsed, for tests
}

// URLOption configures a URLSource.
type URLOption func(*URLSource) error

// WithHeader adds request headers (--manifest-url-header).
func WithHeader(h http.Header) URLOption {
	return func(s *URLSource) error {
		for k, vs := range h {
			for _, v := range vs {
				s.header.Add(k, v)
			}
		}
		return nil
	}
}

// WithInterval sets the polling period (--http-check-frequency).
func WithInterval(d time.Duration) URLOption {
	return func(s *URLSource) error { s.every = d; return nil }
}

// WithTimeout bounds each request, body included, on the source's clock.
func WithTimeout(d time.Duration) URLOption {
	return func(s *URLSource) error { s.timeout = d; return nil }
}

// WithCAFile trusts the certificates in file instead of the system roots
// (--manifest-url-ca).
func WithCAFile(file string) URLOption {
	return func(s *URLSource) error {
		pem, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read manifest URL CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s: no PEM certificate found", file)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		s.client = &http.Client{Transport: tr}
		return nil
	}
}

// WithURLClock sets the clock that paces polls and times requests out, for
// tests.
func WithURLClock(c clock.WithTickerAndDelayedExecution) URLOption {
	return func(s *URLSource) error { s.clock = c; return nil }
}

// WithURLLogger sets the logger.
func WithURLLogger(l *slog.Logger) URLOption {
	return func(s *URLSource) error { s.log = l; return nil }
}

// NewURLSource returns a source that polls rawURL.
func NewURLSource(rawURL string, st Static, opts ...URLOption) (*URLSource, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("manifest URL %q: must be an http:// or https:// URL", displayOrigin(rawURL))
	}
	s := &URLSource{
		url: rawURL, origin: displayOrigin(rawURL), header: http.Header{},
		every: 20 * time.Second, timeout: 10 * time.Second,
		client: &http.Client{}, static: st, clock: clock.RealClock{}, log: slog.Default(),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.log = s.log.With("source", SourceHTTP, "url", s.origin)
	return s, nil
}

// ParseHeader parses a --manifest-url-header value, "Name: value".
func ParseHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || r > unicode.MaxASCII }) >= 0 {
		return "", "", fmt.Errorf("header %q: want \"Name: value\"", s)
	}
	return name, strings.TrimSpace(value), nil
}

// Run polls until ctx ends, sending a snapshot whenever the declared objects
// or the source's problems change.
func (s *URLSource) Run(ctx context.Context, out chan<- Update) {
	ticker := s.clock.NewTicker(s.every)
	defer ticker.Stop()
	for {
		u := s.Poll(ctx)
		if fp := fingerprint(u) + fmt.Sprint(u.Stale); fp != s.lastSent {
			select {
			case out <- u:
				s.lastSent = fp
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// Poll fetches the URL once and returns the snapshot to report: the new one,
// the last good one when nothing changed, or a stale update with the problem.
func (s *URLSource) Poll(ctx context.Context) Update {
	objs, err := s.fetch(ctx)
	switch {
	case err != nil:
		if err.Error() != s.lastErr {
			s.log.Error("manifest URL unusable; keeping its current pods", "err", err)
			s.lastErr = err.Error()
		}
		return Update{Source: SourceHTTP, Stale: true, Problems: []Problem{{Origin: s.origin, Err: err}}}
	case objs == nil: // not modified
		s.lastErr = ""
		return *s.lastGood
	}
	s.lastErr = ""
	u := Update{Source: SourceHTTP, Pods: objs.Pods, ConfigMaps: objs.ConfigMaps, Secrets: objs.Secrets}
	u.addWarnings(objs)
	for _, w := range objs.Warnings {
		s.log.Warn("manifest warning", "warning", w.Error())
	}
	if s.lastGood == nil || fingerprint(*s.lastGood) != fingerprint(u) {
		s.log.Info("manifest URL read", "pods", len(u.Pods))
	}
	s.lastGood = &u
	return u
}

// fetch returns the objects at the URL, or nil objects and no error when the
// server says nothing changed.
func (s *URLSource) fetch(ctx context.Context) (*Objects, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.origin, err)
	}
	for k, vs := range s.header {
		req.Header[k] = vs
	}
	if s.lastGood != nil {
		if s.etag != "" {
			req.Header.Set("If-None-Match", s.etag)
		}
		if s.lastModified != "" {
			req.Header.Set("If-Modified-Since", s.lastModified)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.origin, s.requestError(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && s.lastGood != nil {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read body: %w", s.origin, s.requestError(ctx, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s: HTTP %s: %s", s.origin, resp.Status, snippet(body))
	}
	if len(body) > MaxManifestBytes {
		return nil, fmt.Errorf("%s: body is more than the limit of %d bytes", s.origin, MaxManifestBytes)
	}
	if blank(body) {
		return nil, fmt.Errorf("%s: %w", s.origin, ErrNoDocument)
	}
	// A body seen before is not parsed again: a server that keeps serving
	// the same big broken manifest would cost seconds of CPU every poll.
	sum := sha256.Sum256(body)
	switch {
	case s.lastGood != nil && sum == s.goodSum:
		return nil, nil
	case s.badErr != nil && sum == s.badSum:
		return nil, s.badErr
	}
	s.parses++
	objs, err := Parse(s.origin, body, s.static)
	if err != nil {
		s.badSum, s.badErr = sum, err
		return nil, err
	}
	s.goodSum, s.badErr = sum, nil
	s.etag, s.lastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	return objs, nil
}

// errRequestTimeout cancels a request that outlived the source's timeout.
var errRequestTimeout = errors.New("request timeout")

// withTimeout is context.WithTimeout on the source's clock rather than the
// wall clock, so that tests drive the request timeout with a fake clock.
func (s *URLSource) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	timer := s.clock.AfterFunc(s.timeout, func() { cancel(errRequestTimeout) })
	return ctx, func() {
		timer.Stop()
		cancel(context.Canceled)
	}
}

// requestError is the error to report for a request made with ctx that
// failed with err: the timeout when it was the cause, otherwise err without
// the URL.
func (s *URLSource) requestError(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errRequestTimeout) {
		return fmt.Errorf("no complete answer within %s: %w", s.timeout, context.DeadlineExceeded)
	}
	return scrubURLError(err)
}

// scrubURLError drops the URL from net/http's errors: it may carry a token.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// snippet is the start of an error body, as one printable line.
func snippet(body []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, string(body[:min(len(body), 200)]))
	return strings.Join(strings.Fields(s), " ")
}
