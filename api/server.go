// Package api serves podsup's API the way a kubelet serves its own: the
// read-only port (/pods, /stats/summary, /metrics, /healthz and a status
// page), the authenticated port with logs, events and pushed manifests, and
// a root-only unix socket with the same for the command line.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// DefaultAdminSocket is the root-only unix socket serving the full API to
// the command line on the same machine.
const DefaultAdminSocket = "/run/podsup/podsup.sock"

// Server limits: a slow or idle client cannot hold a connection forever,
// and no request can make podsup read without bound. Variables so tests can
// shorten them.
var (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// shutdownGrace is how long requests have to finish when the server
	// shuts down.
	shutdownGrace = 5 * time.Second
)

// HealthCheck is one named check of /healthz.
type HealthCheck struct {
	Name  string
	Check func() error
}

// HealthzHandler answers "ok" while every check passes, and 500 with the
// failing checks otherwise. ?verbose lists each check.
func HealthzHandler(checks []HealthCheck) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed := false
		report := ""
		for _, c := range checks {
			if err := c.Check(); err != nil {
				failed = true
				report += fmt.Sprintf("[-]%s failed: %v\n", c.Name, err)
			} else {
				report += fmt.Sprintf("[+]%s ok\n", c.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if failed {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, report, "healthz check failed\n")
			return
		}
		if r.URL.Query().Has("verbose") {
			fmt.Fprint(w, report)
		}
		fmt.Fprint(w, "ok")
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with a JSON error in the shape of a Kubernetes Status.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, statusBody(code, "", msg))
}

// statusBody is a Kubernetes Status of a failure; reason may be empty.
func statusBody(code int, reason, msg string) map[string]any {
	st := map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg, "code": code}
	if reason != "" {
		st["reason"] = reason
	}
	return st
}

// Serve serves h on a TCP address until ctx ends, then shuts down
// gracefully. streaming servers (log follows, watches) have no write
// timeout; the others do.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger, streaming bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, log, streaming)
}

// ListenUnix listens on a root-only unix socket, replacing a stale one.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// ServeListener serves h on ln until ctx ends. Requests' contexts end with
// ctx: a follow or a watch, which never ends on its own, ends then, and the
// shutdown need not wait out its grace for it.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, streaming bool) error {
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	if !streaming {
		srv.WriteTimeout = time.Minute
	}
	errCh := make(chan error, 1) // buffered: the goroutine never blocks on exit
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case err := <-errCh:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errCh; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
