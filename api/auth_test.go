package api

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podsup/podsup/api/apitest"
	"github.com/podsup/podsup/internal/testpki"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, err string
		users              int
	}{
		{"tokens", "# comment\nabc,alice,1\ndef,bob,2,\"admins,ops\"\n", "", 2},
		{"too few fields", "abc,alice\n", "line 1", 0},
		{"empty token", ",alice,1\n", "line 1", 0},
		{"bad quoting", "abc,alice,1,\"admins\n", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			os.WriteFile(path, []byte(tc.content), 0o600)
			tokens, err := ReadTokenFile(path)
			if tc.users > 0 {
				if err != nil || len(tokens) != tc.users {
					t.Fatalf("got %d tokens, %v", len(tokens), err)
				}
				if g := tokens[1].user.Groups; len(g) != 2 || g[1] != "ops" {
					t.Errorf("groups %q", g)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v: want one naming %s and %q", err, path, tc.err)
			}
		})
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--token-auth-file") {
		t.Errorf("missing file: %v", err)
	}
}

// serveUser answers with the name of the request's user.
var serveUser = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	u, _ := UserFrom(r.Context())
	w.Write([]byte(u.Name))
})

func TestMiddleware(t *testing.T) {
	tokens := []Token{{token: []byte("s3cret"), user: User{Name: "alice"}}}
	tests := []struct {
		name      string
		anonymous bool
		method    string
		path      string
		auth      string
		code      int
		user      string
	}{
		{"no credentials", false, "GET", "/pods", "", 401, ""},
		{"valid token", false, "PUT", "/pods", "Bearer s3cret", 200, "alice"},
		{"wrong token", false, "GET", "/pods", "Bearer guess", 401, ""},
		{"wrong token with anonymous on", true, "GET", "/pods", "Bearer guess", 401, ""},
		{"not a bearer token", false, "GET", "/pods", "Basic YWxpY2U6cHc=", 401, ""},
		{"anonymous read", true, "GET", "/pods", "", 200, "system:anonymous"},
		{"anonymous write", true, "DELETE", "/pods", "", 403, ""},
		{"anonymous exec over a websocket (a GET)", true, "GET", "/exec/default/web/main", "", 403, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewAuthenticator(tokens, tc.anonymous).Middleware(serveUser)
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tc.code || (tc.code == 200 && rr.Body.String() != tc.user) {
				t.Fatalf("%d %q, want %d %q", rr.Code, rr.Body, tc.code, tc.user)
			}
		})
	}
}

// TestTokenReview: the token file is looked at first; a token it lacks
// goes to the review, a refused one is a 401 and a failed review a 500,
// never anonymous.
func TestTokenReview(t *testing.T) {
	tokens := []Token{{token: []byte("s3cret"), user: User{Name: "alice"}}}
	tests := []struct {
		name    string
		auth    string
		err     error
		code    int
		body    string
		reviews int
	}{
		{"token file", "Bearer s3cret", nil, 200, "alice", 0},
		{"reviewed token", "Bearer sa-token", nil, 200, "system:serviceaccount:default:reader", 1},
		{"refused token", "Bearer guess", nil, 401, "or one the apiserver accepts", 1},
		{"review fails", "Bearer sa-token", errors.New("connection refused"), 500, "could not be checked with the apiserver", 1},
		{"empty token", "Bearer ", nil, 401, "Unauthorized", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			review := &fakeTokens{err: tc.err}
			h := NewAuthenticator(tokens, true, WithTokenReview(review)).Middleware(serveUser)
			req := httptest.NewRequest("GET", "/pods", nil)
			req.Header.Set("Authorization", tc.auth)
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tc.code || !strings.Contains(rr.Body.String(), tc.body) || review.calls != tc.reviews {
				t.Fatalf("%d %q after %d reviews, want %d with %q after %d", rr.Code, rr.Body, review.calls, tc.code, tc.body, tc.reviews)
			}
			if strings.Contains(rr.Body.String(), "connection refused") {
				t.Errorf("the review's error reached the client: %q", rr.Body)
			}
		})
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, other := testpki.NewCA(t, "podsup-clients"), testpki.NewCA(t, "somebody-else")
	caFile := ca.WriteFile(t, dir)
	serving, err := ServingTLS("", "", caFile, filepath.Join(dir, "pki"), "node1", []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	h := NewAuthenticator(nil, false).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFrom(r.Context())
		w.Write([]byte(u.Name + "/" + strings.Join(u.Groups, ",")))
	}))
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = serving
	srv.StartTLS()
	defer srv.Close()

	// The self-signed serving certificate was kept in the root dir and is
	// what the server presents.
	servingPEM, err := os.ReadFile(filepath.Join(dir, "pki", "podsup.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(servingPEM)
	get := func(cert *tls.Certificate) (int, string, error) {
		tc := &tls.Config{RootCAs: roots}
		if cert != nil {
			// Always present the certificate, even when the server's list
			// of acceptable CAs does not name its issuer, as an attacker
			// would.
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: apitest.WaitLimit}
		resp, err := c.Get(srv.URL + "/pods")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, string(body), err
	}
	good := ca.Client(t, "alice", "admins")
	if code, body, err := get(&good); err != nil || code != 200 || body != "alice/admins,system:authenticated" {
		t.Fatalf("valid client certificate: %d %q %v", code, body, err)
	}
	if code, _, err := get(nil); err != nil || code != 401 {
		t.Fatalf("no client certificate: %d %v, want 401", code, err)
	}
	bad := other.Client(t, "mallory", "admins")
	if code, _, err := get(&bad); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client certificate of another CA: %d %v, want a refused handshake", code, err)
	}

	// A second start keeps the same serving certificate.
	if _, err := ServingTLS("", "", "", filepath.Join(dir, "pki"), "node1", nil); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "pki", "podsup.crt"))
	if string(again) != string(servingPEM) {
		t.Error("the self-signed certificate was replaced on a second start")
	}
}

func TestServingTLSErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	if _, err := ServingTLS("", "", junk, filepath.Join(dir, "pki"), "node1", nil); err == nil || !strings.Contains(err.Error(), "--client-ca-file") {
		t.Errorf("junk client CA: %v", err)
	}
	if _, err := ServingTLS(junk, junk, "", dir, "node1", nil); err == nil || !strings.Contains(err.Error(), "serving certificate") {
		t.Errorf("junk serving certificate: %v", err)
	}
}

// TestWebSocketBearerToken: a WebSocket's bearer token may come in its
// subprotocols, as a browser sends it; the protocol is then taken off the
// request, so the answer never echoes the token.
func TestWebSocketBearerToken(t *testing.T) {
	tokens := []Token{{token: []byte("s3cret"), user: User{Name: "alice"}}}
	var seenProtocols string
	h := NewAuthenticator(tokens, false).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenProtocols = r.Header.Get("Sec-Websocket-Protocol")
		serveUser.ServeHTTP(w, r)
	}))
	for _, tc := range []struct {
		name, protocols string
		code            int
	}{
		{"good token", "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io." + base64.RawURLEncoding.EncodeToString([]byte("s3cret")), 200},
		{"wrong token", "base64url.bearer.authorization.k8s.io." + base64.RawURLEncoding.EncodeToString([]byte("guess")) + ", v5.channel.k8s.io", 401},
		{"not base64", "base64url.bearer.authorization.k8s.io.!!!", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/pods", nil)
			req.Header.Set("Sec-Websocket-Protocol", tc.protocols)
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tc.code {
				t.Fatalf("%d %q, want %d", rr.Code, rr.Body, tc.code)
			}
			if tc.code == 200 && (rr.Body.String() != "alice" || seenProtocols != "v5.channel.k8s.io") {
				t.Errorf("user %q, protocols left %q; want alice and v5.channel.k8s.io alone", rr.Body, seenProtocols)
			}
		})
	}
}
