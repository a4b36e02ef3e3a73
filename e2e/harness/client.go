//go:build integration

package harness

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// APIClient talks to one of podsup's HTTP endpoints.
type APIClient struct {
	base string
	http *http.Client
	auth string // Authorization header
}

// Do sends a request and returns the status code and the body.
func (c APIClient) Do(method, path string, body io.Reader) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, "", err
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(data), err
}

// Must sends a request and fails the test unless it answers want.
func (c APIClient) Must(t testing.TB, method, path, body string, want int) string {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	code, out, err := c.Do(method, path, r)
	if err != nil || code != want {
		t.Fatalf("%s %s%s: %d %v: %s (want %d)", method, c.base, path, code, err, out, want)
	}
	return out
}

// WaitAnswer waits until the endpoint answers GET path at all.
func (c APIClient) WaitAnswer(t testing.TB, path string) {
	t.Helper()
	WaitFor(t, c.base+path+" answers", func() bool {
		_, _, err := c.Do("GET", path, nil)
		return err == nil
	})
}

// ReadOnlyClient talks to the read-only port.
func (e *Env) ReadOnlyClient() APIClient {
	return APIClient{base: "http://" + e.ReadOnly, http: &http.Client{}}
}

// SocketClient talks to the admin socket.
func (e *Env) SocketClient() APIClient {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.Socket)
	}}
	return APIClient{base: "http://podsup", http: &http.Client{Transport: tr}}
}

// SecureClient talks to the authenticated port, trusting podsup's
// self-signed certificate and presenting cert if given.
func (e *Env) SecureClient(cert *tls.Certificate, auth string) APIClient {
	tc := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return APIClient{base: "https://" + e.Secure, http: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, auth: auth}
}

// StatsSummary reads /stats/summary from the read-only port.
func (e *Env) StatsSummary() (*statsapi.Summary, error) {
	resp, err := http.Get("http://" + e.ReadOnly + "/stats/summary")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s statsapi.Summary
	return &s, json.NewDecoder(resp.Body).Decode(&s)
}

// HealthzClient talks to the healthz port.
func (e *Env) HealthzClient() APIClient {
	return APIClient{base: "http://" + e.Healthz, http: &http.Client{}}
}

// LogTail is the last line of a container's log of the named pod (without
// the node suffix), read through the admin socket, or why there is none.
func (e *Env) LogTail(pod, container string) string {
	code, out, err := e.SocketClient().Do("GET", "/containerLogs/default/"+pod+"-node1/"+container+"?tailLines=1", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Sprintf("no log: %d %v", code, err)
	}
	return strings.TrimSpace(out)
}
