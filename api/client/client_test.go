package client

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podsup/podsup/api/apitest"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/api"
)

func TestParseServer(t *testing.T) {
	tests := []struct {
		server, wantDisplay, wantBase string
		wantErr                       bool
	}{
		{server: "unix:///run/podsup/podsup.sock", wantDisplay: "unix:///run/podsup/podsup.sock", wantBase: "http://podsup"},
		{server: "/run/podsup/podsup.sock", wantDisplay: "unix:///run/podsup/podsup.sock", wantBase: "http://podsup"},
		{server: "https://node1:10250/", wantDisplay: "https://node1:10250/", wantBase: "https://node1:10250"},
		{server: "http://127.0.0.1:10255", wantDisplay: "http://127.0.0.1:10255", wantBase: "http://127.0.0.1:10255"},
		{server: "node1:10250", wantErr: true},
		{server: "unix://relative.sock", wantErr: true},
		{server: "ftp://node1", wantErr: true},
		{server: "https://", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.server, func(t *testing.T) {
			ep, err := parseServer(tc.server, nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want one: %v", err, tc.wantErr)
			}
			if err == nil && (ep.display != tc.wantDisplay || ep.base != tc.wantBase) {
				t.Errorf("got %q on %q, want %q on %q", ep.display, ep.base, tc.wantDisplay, tc.wantBase)
			}
		})
	}
}

// TestDefaultServer: without --server, the admin socket when it answers,
// else the read-only port for what it serves, and an error naming both
// when neither does.
func TestDefaultServer(t *testing.T) {
	fx := newFixture(t)
	fx.pods.Set(staticPod("default", "web", "main"))
	readOnly := httptest.NewServer(api.ReadOnlyHandler(api.Deps{Pods: fx.pods}))
	defer readOnly.Close()
	missing := filepath.Join(t.TempDir(), "none.sock")
	ctx := context.Background()

	t.Run("socket", func(t *testing.T) {
		c, err := newClient(connOptions{defaultSocket: fx.socket, defaultRO: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		var evs []any
		if err := c.getJSON(ctx, "/events", nil, true, &evs); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("read-only port for pods", func(t *testing.T) {
		c, err := newClient(connOptions{defaultSocket: missing, defaultRO: readOnly.URL})
		if err != nil {
			t.Fatal(err)
		}
		var list v1.PodList
		if err := c.getJSON(ctx, "/pods", nil, false, &list); err != nil || len(list.Items) != 1 {
			t.Fatalf("got %d pods, %v; want the read-only port's 1", len(list.Items), err)
		}
		// Logs are not on the read-only port: the error says where they are.
		err = c.getJSON(ctx, "/events", nil, true, &list)
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "admin socket") || !strings.Contains(err.Error(), missing) {
			t.Errorf("error %v, want one naming the admin socket and why %s failed", err, missing)
		}
	})
	t.Run("neither", func(t *testing.T) {
		c, err := newClient(connOptions{defaultSocket: missing, defaultRO: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		var list v1.PodList
		err = c.getJSON(ctx, "/pods", nil, false, &list)
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "unix://"+missing) || !strings.Contains(err.Error(), "http://127.0.0.1:1") {
			t.Errorf("error %v, want one naming both places tried", err)
		}
	})
}

func TestErrorAnswers(t *testing.T) {
	old := maxResponse
	maxResponse = 64 << 10
	t.Cleanup(func() { maxResponse = old })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/status":
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, `{"kind":"Status","message":"web.yaml: spec.containers[0].image: required","code":422}`)
		case "/big":
			w.Write([]byte(`"`))
			w.Write(make([]byte, maxResponse))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := newClient(connOptions{server: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var v any
	err = c.getJSON(ctx, "/status", nil, false, &v)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 422 || se.Message != "web.yaml: spec.containers[0].image: required" {
		t.Errorf("error %#v, want the Status message", err)
	}
	err = c.getJSON(ctx, "/logs", nil, false, &v)
	if !IsNotFound(err) || !strings.Contains(err.Error(), "404 page not found") || !strings.Contains(err.Error(), "read-only port") {
		t.Errorf("error %v, want a 404 that says a read-only port may be why", err)
	}
	if err := c.getJSON(ctx, "/big", nil, false, &v); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("error %v, want an answer too large", err)
	}
}

// TestAuthenticatedPort: over TLS, with the server's certificate as the
// CA and a bearer token from a file, as against podsup's --address.
func TestAuthenticatedPort(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "tokens.csv")
	os.WriteFile(tokenFile, []byte("s3cret,admin,1\n"), 0o600)
	tokens, err := api.ReadTokenFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	pods := &apitest.Pods{}
	pods.Set(staticPod("default", "web", "main"))
	srv := httptest.NewTLSServer(api.NewAuthenticator(tokens, false).Middleware(api.FullHandler(api.Deps{Pods: pods})))
	defer srv.Close()
	caFile := filepath.Join(dir, "ca.crt")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	mine := filepath.Join(dir, "token")
	os.WriteFile(mine, []byte("s3cret\n"), 0o600)

	tests := []struct {
		name    string
		opts    connOptions
		wantErr string
	}{
		{name: "token file", opts: connOptions{tokenFile: mine, caFile: caFile}},
		{name: "token", opts: connOptions{token: "s3cret", caFile: caFile}},
		{name: "insecure", opts: connOptions{token: "s3cret", insecureSkipVerify: true}},
		{name: "bad token", opts: connOptions{token: "nope", caFile: caFile}, wantErr: "Unauthorized"},
		{name: "no token", opts: connOptions{caFile: caFile}, wantErr: "Unauthorized"},
		{name: "unknown CA", opts: connOptions{token: "s3cret"}, wantErr: "certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.server = srv.URL
			c, err := newClient(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var list v1.PodList
			err = c.getJSON(context.Background(), "/pods", nil, false, &list)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(list.Items) != 1 {
				t.Fatalf("got %d pods, %v", len(list.Items), err)
			}
		})
	}
}

func TestConnOptionErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	tests := []struct {
		name    string
		opts    connOptions
		wantErr string
	}{
		{name: "token twice", opts: connOptions{token: "a", tokenFile: "/x"}, wantErr: "give one"},
		{name: "missing token file", opts: connOptions{tokenFile: filepath.Join(dir, "none")}, wantErr: "--token-file"},
		{name: "CA not PEM", opts: connOptions{caFile: notPEM}, wantErr: "no PEM certificate"},
		{name: "certificate without key", opts: connOptions{certFile: notPEM}, wantErr: "go together"},
		{name: "bad server", opts: connOptions{server: "node1:10250"}, wantErr: "want unix:///PATH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newClient(tc.opts); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
