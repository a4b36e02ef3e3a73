// Package api serves podsup's status the way a kubelet serves its own: the
// read-only port's /pods and /healthz, with the kubelet's paths and shapes,
// so tools that read a kubelet read podsup.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podsup/podsup/health"
)

// PodLister is where the API reads pods from (the supervisor).
type PodLister interface {
	Pods() []*v1.Pod
	Pod(key string) *v1.Pod
}

// ProbeReporter is where the API reads probe results from (the health
// package).
type ProbeReporter interface {
	Probes(podKey string) []health.ProbeStatus
}

// Sources are what the API reports on.
type Sources struct {
	Pods   PodLister
	Probes ProbeReporter // may be nil
}

// PodStatus is a pod's status with what the kubelet keeps elsewhere: the
// latest result of each probe, with the output of a failed one.
type PodStatus struct {
	Namespace string               `json:"namespace"`
	Name      string               `json:"name"`
	Status    v1.PodStatus         `json:"status"`
	Probes    []health.ProbeStatus `json:"probes"`
}

// HealthCheck is one named check of /healthz.
type HealthCheck struct {
	Name  string
	Check func() error
}

// Server timeouts: a slow or idle client cannot hold a connection forever.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// ReadOnlyHandler serves the unauthenticated read-only port: /pods, a pod's
// status with its probes, and /healthz.
func ReadOnlyHandler(src Sources, checks []HealthCheck) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pods", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, PodList(src.Pods.Pods())) })
	mux.HandleFunc("GET /pods/{namespace}/{name}/status", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("namespace") + "/" + r.PathValue("name")
		pod := src.Pods.Pod(key)
		if pod == nil {
			writeError(w, http.StatusNotFound, fmt.Sprintf("pod %s not found", key))
			return
		}
		st := PodStatus{Namespace: pod.Namespace, Name: pod.Name, Status: pod.Status, Probes: []health.ProbeStatus{}}
		if src.Probes != nil {
			if probes := src.Probes.Probes(key); probes != nil {
				st.Probes = probes
			}
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.Handle("GET /healthz", HealthzHandler(checks))
	return mux
}

// writeError answers with a JSON error, as the kubelet's Status object.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg, "code": code})
}

// PodList wraps pods as a v1 PodList, as the kubelet's /pods returns them.
func PodList(pods []*v1.Pod) *v1.PodList {
	list := &v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: make([]v1.Pod, 0, len(pods))}
	for _, p := range pods {
		list.Items = append(list.Items, *p)
	}
	return list
}

// HealthzHandler answers "ok" while every check passes, and 500 with the
// failing checks otherwise. ?verbose lists each check.
func HealthzHandler(checks []HealthCheck) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var failed []string
		report := ""
		for _, c := range checks {
			if err := c.Check(); err != nil {
				failed = append(failed, fmt.Sprintf("[-]%s failed: %v", c.Name, err))
				report += fmt.Sprintf("[-]%s failed: %v\n", c.Name, err)
			} else {
				report += fmt.Sprintf("[+]%s ok\n", c.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if len(failed) > 0 {
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
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// Serve serves h on addr until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h, log)
}

// ServeListener serves h on ln until ctx ends.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	errCh := make(chan error, 1) // buffered: the goroutine never blocks on exit
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case err := <-errCh:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errCh; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
