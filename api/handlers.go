package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/health"
	"github.com/podsup/podsup/logs"
	"github.com/podsup/podsup/manifest"
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

// Pusher stores pushed manifests (the manifest package's PushSource).
type Pusher interface {
	Put(name string, data []byte) (*manifest.Objects, error)
	Delete(name string) error
	Names() []string
}

// StatsProvider answers /stats/summary in the kubelet's Summary API shape.
type StatsProvider interface {
	Summary(ctx context.Context) (any, error)
}

// NodeReporter describes the node for the status page: its conditions and
// resources.
type NodeReporter interface {
	NodeSummary() NodeSummary
}

// NodeSummary is what the status page shows of the node.
type NodeSummary struct {
	Name       string             `json:"name"`
	Conditions []v1.NodeCondition `json:"conditions"`
	Memory     Usage              `json:"memory"`
	Disk       Usage              `json:"disk"`
}

// Usage is an amount used of a capacity, in bytes.
type Usage struct {
	Used     uint64 `json:"used"`
	Capacity uint64 `json:"capacity"`
}

// Deps are what the API reports on. Fields left nil switch their endpoints
// off.
type Deps struct {
	Pods    PodLister
	Probes  ProbeReporter
	Events  *events.Recorder
	Push    Pusher
	Stats   StatsProvider
	Node    NodeReporter
	Metrics http.Handler
	Health  []HealthCheck
	LogDir  string
	// Streams runs exec, attach, port-forward and run; nil switches them
	// off.
	Streams      Streams
	StreamLimits StreamLimits
	// Clock paces the checks that end a log follow, and is what a log's
	// sinceSeconds counts back from; nil means the real clock.
	Clock clock.WithTicker
}

func (d Deps) clock() clock.WithTicker {
	if d.Clock == nil {
		return clock.RealClock{}
	}
	return d.Clock
}

// PodStatus is a pod's status with what the kubelet keeps elsewhere: the
// latest result of each probe, with the output of a failed one, and the
// pod's recent events.
type PodStatus struct {
	Namespace string               `json:"namespace"`
	Name      string               `json:"name"`
	Status    v1.PodStatus         `json:"status"`
	Probes    []health.ProbeStatus `json:"probes"`
	Events    []events.Event       `json:"events"`
}

// maxPushBytes bounds a pushed manifest, as a file is bounded.
const maxPushBytes = manifest.MaxManifestBytes

// ReadOnlyHandler serves the unauthenticated read-only port. It never
// serves anything secret: pods name their Secrets but carry no values.
func ReadOnlyHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	d.readRoutes(mux)
	mux.Handle("GET /{$}", statusPage())
	mux.HandleFunc("GET /ui/state", d.uiState)
	return refuseDotSegments(jsonErrors(mux, readOnlyHint))
}

// readOnlyHint ends the 404 of a path the read-only port does not serve.
const readOnlyHint = " (the read-only port serves pods, their status, stats, metrics and healthz: " +
	"logs, events, running pods and pushed manifests are on the admin socket and the authenticated port)"

// FullHandler serves everything: the read-only routes and logs, running
// pods, events and pushed manifests. The authenticated port serves it behind
// an Authenticator, the admin socket as it is.
func FullHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	d.readRoutes(mux)
	mux.Handle("GET /{$}", statusPage())
	mux.HandleFunc("GET /ui/state", d.uiState)
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", d.containerLogs)
	mux.HandleFunc("GET /runningpods", d.runningPods)
	mux.HandleFunc("GET /runningpods/", d.runningPods)
	mux.HandleFunc("GET /events", d.events)
	mux.HandleFunc("GET /manifests", d.listManifests)
	mux.HandleFunc("PUT /manifests/{name}", d.putManifest)
	mux.HandleFunc("DELETE /manifests/{name}", d.deleteManifest)
	d.streamRoutes(mux)
	return refuseDotSegments(jsonErrors(mux, ""))
}

// jsonErrors answers requests no route takes (404, or 405 for a path served
// with other methods) with a JSON Status, as every other error is; hint
// ends the message of a 404.
func jsonErrors(mux *http.ServeMux, hint string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// The mux's own error handler writes nothing but its code and an
		// Allow header: see which.
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		code := rec.code
		if code < 400 {
			mux.ServeHTTP(w, r) // a redirect: let the mux do it
			return
		}
		msg := fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, strings.ToLower(http.StatusText(code)))
		if code == http.StatusNotFound {
			msg += hint
		}
		writeError(w, code, msg)
	})
}

// headerRecorder keeps a response's code and headers and drops its body.
type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) Write(p []byte) (int, error) {
	if h.code == 0 {
		h.code = http.StatusOK
	}
	return len(p), nil
}
func (h *headerRecorder) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}

// refuseDotSegments answers 400 to a path with ".", ".." or empty segments, which
// the mux would otherwise clean and redirect: a client asking for one is
// confused or hostile.
func refuseDotSegments(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		segs := strings.Split(r.URL.Path, "/")
		for i, seg := range segs {
			if seg == "." || seg == ".." {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("path %q: no . or .. segments allowed", r.URL.Path))
				return
			}
			// An empty segment would have the mux answer with a redirect
			// to the cleaned path: refuse it as the others are refused.
			if seg == "" && i > 0 && i < len(segs)-1 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("path %q: no empty segments allowed", r.URL.Path))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (d Deps) readRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /pods", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, PodList(d.Pods.Pods())) })
	mux.HandleFunc("GET /pods/", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, PodList(d.Pods.Pods())) })
	mux.HandleFunc("GET /pods/{namespace}/{name}/status", d.podStatus)
	mux.Handle("GET /healthz", HealthzHandler(d.Health))
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics)
	}
	if d.Stats != nil {
		mux.HandleFunc("GET /stats/summary", func(w http.ResponseWriter, r *http.Request) {
			s, err := d.Stats.Summary(r.Context())
			if err != nil {
				writeError(w, http.StatusInternalServerError, err.Error())
				return
			}
			writeJSON(w, http.StatusOK, s)
		})
	}
}

// PodList wraps pods as a v1 PodList, as the kubelet's /pods returns them.
func PodList(pods []*v1.Pod) *v1.PodList {
	list := &v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: make([]v1.Pod, 0, len(pods))}
	for _, p := range pods {
		list.Items = append(list.Items, *p)
	}
	return list
}

// validNames checks path elements that name Kubernetes objects, so none of
// them can climb out of a directory.
func validNames(w http.ResponseWriter, names ...string) bool {
	for _, n := range names {
		if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%q: %s", n, strings.Join(msgs, "; ")))
			return false
		}
	}
	return true
}

func (d Deps) podStatus(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if !validNames(w, ns, name) {
		return
	}
	key := ns + "/" + name
	pod := d.Pods.Pod(key)
	if pod == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("pod %s not found", key))
		return
	}
	st := PodStatus{Namespace: pod.Namespace, Name: pod.Name, Status: pod.Status, Probes: []health.ProbeStatus{}, Events: []events.Event{}}
	if d.Probes != nil {
		if probes := d.Probes.Probes(key); probes != nil {
			st.Probes = probes
		}
	}
	if d.Events != nil {
		if evs := d.Events.List(key); evs != nil {
			st.Events = evs
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// containerDir finds a container's log directory: the pod's UID is part of
// the name and changes when its manifest does, so the newest directory wins.
func (d Deps) containerDir(ns, pod, container string) (string, bool) {
	matches, _ := filepath.Glob(filepath.Join(d.LogDir, ns+"_"+pod+"_*", container))
	var best string
	var bestTime time.Time
	for _, m := range matches {
		if info, err := os.Stat(m); err == nil && info.ModTime().After(bestTime) {
			best, bestTime = m, info.ModTime()
		}
	}
	return best, best != ""
}

// containerLogs serves a container's log as the kubelet's /containerLogs
// does: follow, tailLines, sinceSeconds, sinceTime, timestamps, previous
// and limitBytes.
func (d Deps) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	if !validNames(w, ns, pod, container) {
		return
	}
	q := r.URL.Query()
	opts := logs.ReadOptions{TailLines: -1, Follow: q.Get("follow") == "true", Timestamps: q.Get("timestamps") == "true", Previous: q.Get("previous") == "true",
		Clock: d.clock()}
	var err error
	if v := q.Get("tailLines"); v != "" {
		if opts.TailLines, err = strconv.ParseInt(v, 10, 64); err != nil || opts.TailLines < 0 {
			writeError(w, http.StatusBadRequest, "tailLines: want a number of lines")
			return
		}
	}
	if v := q.Get("limitBytes"); v != "" {
		if opts.LimitBytes, err = strconv.ParseInt(v, 10, 64); err != nil || opts.LimitBytes <= 0 {
			writeError(w, http.StatusBadRequest, "limitBytes: want a number of bytes")
			return
		}
	}
	if v := q.Get("sinceSeconds"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs <= 0 {
			writeError(w, http.StatusBadRequest, "sinceSeconds: want a number of seconds")
			return
		}
		opts.Since = d.clock().Now().Add(-time.Duration(secs) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		if opts.Since, err = time.Parse(time.RFC3339, v); err != nil {
			writeError(w, http.StatusBadRequest, "sinceTime: want an RFC 3339 time")
			return
		}
	}
	dir, ok := d.containerDir(ns, pod, container)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no logs for container %q of pod %s/%s", container, ns, pod))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	out := io.Writer(w)
	if f, ok := w.(http.Flusher); ok && opts.Follow {
		out = flushWriter{w, f}
	}
	ctx := r.Context()
	if opts.Follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		// The ticker is made before the log is sent, so a test's clock
		// has it by the time the test reads the first line.
		go d.endWhenGone(ctx, cancel, d.clock().NewTicker(goneCheck), ns+"/"+pod, dir)
	}
	err = logs.ReadContainer(ctx, dir, opts, out)
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.Is(err, logs.ErrNoPrevious):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("previous terminated container %q of pod %s/%s not found", container, ns, pod))
	case errors.Is(err, logs.ErrNoLogs):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no logs for container %q of pod %s/%s", container, ns, pod))
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// goneCheck is how often a followed log's pod is looked for.
const goneCheck = time.Second

// endWhenGone ends a log follow once the pod is gone or its logs were
// removed, as kubectl's follow ends with its container; it returns when ctx
// ends.
func (d Deps) endWhenGone(ctx context.Context, cancel context.CancelFunc, t clock.Ticker, key, dir string) {
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if _, err := os.Stat(dir); d.Pods.Pod(key) == nil || err != nil {
			cancel()
			return
		}
	}
}

// flushWriter sends followed log lines as they come.
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	fw.f.Flush()
	return n, err
}

// runningPods lists the pods with running containers, as the kubelet's
// /runningpods does: names, UIDs and the running containers only.
func (d Deps) runningPods(w http.ResponseWriter, r *http.Request) {
	var out []*v1.Pod
	for _, p := range d.Pods.Pods() {
		rp := &v1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID}}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil {
				rp.Spec.Containers = append(rp.Spec.Containers, v1.Container{Name: cs.Name, Image: cs.Image})
			}
		}
		if len(rp.Spec.Containers) > 0 {
			out = append(out, rp)
		}
	}
	writeJSON(w, http.StatusOK, PodList(out))
}

func (d Deps) listManifests(w http.ResponseWriter, r *http.Request) {
	if d.Push == nil {
		writeError(w, http.StatusNotFound, "pushing manifests is off")
		return
	}
	names := d.Push.Names()
	sort.Strings(names)
	writeJSON(w, http.StatusOK, map[string]any{"manifests": names})
}

// putManifest stores a pushed manifest after validating it as a file is
// validated; the answer lists every problem.
func (d Deps) putManifest(w http.ResponseWriter, r *http.Request) {
	if d.Push == nil {
		writeError(w, http.StatusNotFound, "pushing manifests is off")
		return
	}
	name := r.PathValue("name")
	if err := manifest.CheckPushName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPushBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("manifest %q: more than the limit of %d bytes", name, maxPushBytes))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("manifest %q: read body: %v", name, err))
		return
	}
	objs, err := d.Push.Put(name, body)
	if err != nil {
		code := http.StatusUnprocessableEntity
		if !errors.Is(err, manifest.ErrInvalid) {
			code = http.StatusInternalServerError
		}
		writeError(w, code, err.Error())
		return
	}
	var pods []string
	for _, p := range objs.Pods {
		pods = append(pods, manifest.PodKey(p))
	}
	var warnings []string
	for _, wr := range objs.Warnings {
		warnings = append(warnings, wr.Error())
	}
	writeJSON(w, http.StatusOK, map[string]any{"manifest": name, "pods": pods, "warnings": warnings})
}

func (d Deps) deleteManifest(w http.ResponseWriter, r *http.Request) {
	if d.Push == nil {
		writeError(w, http.StatusNotFound, "pushing manifests is off")
		return
	}
	name := r.PathValue("name")
	if err := d.Push.Delete(name); err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, manifest.ErrNotFound):
			code = http.StatusNotFound
		case manifest.CheckPushName(name) != nil:
			code = http.StatusBadRequest
		}
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"manifest": name, "deleted": true})
}
