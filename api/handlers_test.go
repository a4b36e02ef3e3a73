package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/api/apitest"
	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/logs"
	"github.com/podsup/podsup/manifest"
)

func testPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-node1", UID: "u1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "busybox",
			Env: []v1.EnvVar{{Name: "PASSWORD", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{
				LocalObjectReference: v1.LocalObjectReference{Name: "db"}, Key: "password"}}}}}}},
		Status: v1.PodStatus{Phase: v1.PodRunning, PodIP: "10.86.0.5",
			Conditions:        []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}},
			ContainerStatuses: []v1.ContainerStatus{{Name: "app", Image: "busybox", Ready: true, RestartCount: 2, State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}}},
	}
}

func testDeps(t testing.TB) Deps {
	t.Helper()
	rec := events.NewRecorder(10, slog.New(slog.DiscardHandler), clocktesting.NewFakePassiveClock(time.Unix(1e9, 0)))
	rec.Eventf(events.Warning, "Unhealthy", "default/web-node1", "app", "Readiness probe failed: HTTP probe failed with statuscode: 503")
	push, err := manifest.NewPushSource(t.TempDir(), manifest.Static{NodeName: "node1", Source: manifest.SourceAPI}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return Deps{
		Pods:   apitest.NewPods(testPod()),
		Probes: apitest.Probes{"default/web-node1": {{Container: "app", Probe: "Readiness", Result: "failure", State: "failure", Output: "HTTP probe failed with statuscode: 503"}}},
		Events: rec, Push: push, LogDir: t.TempDir(),
		Node: fakeNode{},
	}
}

type fakeNode struct{}

func (fakeNode) NodeSummary() NodeSummary {
	return NodeSummary{Name: "node1", Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		Memory: Usage{Used: 1 << 30, Capacity: 4 << 30}}
}

func do(t *testing.T, h http.Handler, method, path string, body io.Reader) *httptest.ResponseRecorder {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(method, path, body))
	return rr
}

func TestRoutes(t *testing.T) {
	d := testDeps(t)
	ro, full := ReadOnlyHandler(d), FullHandler(d)
	tests := []struct {
		name     string
		h        http.Handler
		method   string
		path     string
		body     string
		code     int
		contains string
	}{
		{"pods", ro, "GET", "/pods", "", 200, `"kind":"PodList"`},
		{"status", ro, "GET", "/pods/default/web-node1/status", "", 200, `HTTP probe failed with statuscode: 503`},
		{"status of a missing pod", ro, "GET", "/pods/default/nope/status", "", 404, `pod default/nope not found`},
		{"status with a bad name", ro, "GET", "/pods/default/Web_1/status", "", 400, `"code":400`},
		{"status page", ro, "GET", "/", "", 200, "<title>podsup</title>"},
		{"ui state", ro, "GET", "/ui/state", "", 200, `"restarts":2`},
		{"read-only has no logs", ro, "GET", "/containerLogs/default/web-node1/app", "", 404, ""},
		{"read-only has no events", ro, "GET", "/events", "", 404, ""},
		{"read-only takes no manifests", ro, "PUT", "/manifests/web", "kind: Pod", 404, ""},
		{"no stats without a provider", ro, "GET", "/stats/summary", "", 404, ""},
		{"running pods", full, "GET", "/runningpods/", "", 200, `"name":"app"`},
		{"events", full, "GET", "/events?pod=default/web-node1", "", 200, `"reason":"Unhealthy"`},
		{"logs of a container with none", full, "GET", "/containerLogs/default/web-node1/app", "", 404, `no logs for container`},
		{"log path traversal", full, "GET", "/containerLogs/default/..%2F..%2Fetc/passwd", "", 400, `"code":400`},
		{"log path traversal in the container", full, "GET", "/containerLogs/default/web-node1/..", "", 400, ""},
		{"bad tailLines", full, "GET", "/containerLogs/default/web-node1/app?tailLines=x", "", 400, "tailLines"},
		{"bad sinceTime", full, "GET", "/containerLogs/default/web-node1/app?sinceTime=yesterday", "", 400, "sinceTime"},
		{"wrong method", full, "POST", "/pods", "", 405, "method not allowed"},
		{"no such path", full, "GET", "/nope", "", 404, "not found"},
		{"manifests", full, "GET", "/manifests", "", 200, `"manifests":[]`},
		{"push an invalid pod", full, "PUT", "/manifests/web", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app}]}\n", 422, "spec.containers[0].image"},
		{"push an invalid pod with a typo", full, "PUT", "/manifests/web", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, imagee: web:1}]}\n", 422, "spec.containers[0].imagee: unknown field"},
		{"push junk", full, "PUT", "/manifests/web", "\x00\x01\x02", 422, `"code":422`},
		{"push with a bad name", full, "PUT", "/manifests/..", "kind: Pod", 400, ""},
		{"delete what is not there", full, "DELETE", "/manifests/nothing", "", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			rr := do(t, tc.h, tc.method, tc.path, body)
			if rr.Code != tc.code {
				t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.path, rr.Code, tc.code, rr.Body)
			}
			if !strings.Contains(rr.Body.String(), tc.contains) {
				t.Errorf("%s %s: body lacks %q: %s", tc.method, tc.path, tc.contains, rr.Body)
			}
			if rr.Code >= 400 {
				var st struct{ Kind, Message string }
				if err := json.Unmarshal(rr.Body.Bytes(), &st); err != nil || st.Kind != "Status" || st.Message == "" {
					t.Errorf("error body is not a JSON Status: %s", rr.Body)
				}
			}
		})
	}
}

func TestPushLifecycle(t *testing.T) {
	full := FullHandler(testDeps(t))
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, image: busybox, bogus: 1}]}\n"
	rr := do(t, full, "PUT", "/manifests/web", strings.NewReader(pod))
	if rr.Code != 200 || !strings.Contains(rr.Body.String(), `"pods":["default/web-node1"]`) || !strings.Contains(rr.Body.String(), "bogus") {
		t.Fatalf("push: %d %s", rr.Code, rr.Body)
	}
	if rr := do(t, full, "GET", "/manifests", nil); !strings.Contains(rr.Body.String(), `"web"`) {
		t.Fatalf("pushed manifest not listed: %s", rr.Body)
	}
	if rr := do(t, full, "DELETE", "/manifests/web", nil); rr.Code != 200 {
		t.Fatalf("delete: %d %s", rr.Code, rr.Body)
	}
	if rr := do(t, full, "DELETE", "/manifests/web", nil); rr.Code != 404 {
		t.Fatalf("second delete: %d %s", rr.Code, rr.Body)
	}
}

func TestPushTooLarge(t *testing.T) {
	full := FullHandler(testDeps(t))
	body := strings.NewReader("# " + strings.Repeat("x", maxPushBytes+10))
	rr := do(t, full, "PUT", "/manifests/web", body)
	if want := `manifest \"web\": more than the limit of 4194304 bytes`; rr.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rr.Body.String(), want) {
		t.Fatalf("huge push: %d %s, want 413 and %s", rr.Code, rr.Body, want)
	}
}

func TestReadOnlyNeverShowsSecrets(t *testing.T) {
	d := testDeps(t)
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2-very-secret}\n---\n" +
		"apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, image: busybox}]}\n"
	if rr := do(t, FullHandler(d), "PUT", "/manifests/web", strings.NewReader(secret)); rr.Code != 200 {
		t.Fatalf("push: %d %s", rr.Code, rr.Body)
	}
	ro := ReadOnlyHandler(d)
	for _, path := range []string{"/pods", "/pods/default/web-node1/status", "/ui/state", "/"} {
		rr := do(t, ro, "GET", path, nil)
		if strings.Contains(rr.Body.String(), "hunter2") {
			t.Errorf("%s shows a secret value", path)
		}
	}
	// The push answer itself echoes pod keys and warnings, never the data.
	rr := do(t, FullHandler(d), "PUT", "/manifests/web", strings.NewReader(secret))
	if strings.Contains(rr.Body.String(), "hunter2") {
		t.Errorf("the push answer shows a secret value: %s", rr.Body)
	}
}

func TestContainerLogs(t *testing.T) {
	d := testDeps(t)
	dir := logs.ContainerDir(d.LogDir, "default", "web-node1", "u1", "app")
	for restart, lines := range []string{"first\n", "second\nthird\n"} {
		w, err := logs.NewWriter(logs.FilePath(dir, restart))
		if err != nil {
			t.Fatal(err)
		}
		s := w.Stream("stdout")
		io.WriteString(s, lines)
		s.Close()
		w.Close()
	}
	full := FullHandler(d)
	tests := []struct{ query, want string }{
		{"", "second\nthird\n"},
		{"?tailLines=1", "third\n"},
		{"?previous=true", "first\n"},
		{"?limitBytes=3", "sec"},
	}
	for _, tc := range tests {
		rr := do(t, full, "GET", "/containerLogs/default/web-node1/app"+tc.query, nil)
		if rr.Code != 200 || rr.Body.String() != tc.want {
			t.Errorf("logs%s: %d %q, want %q", tc.query, rr.Code, rr.Body, tc.want)
		}
	}
	if rr := do(t, full, "GET", "/containerLogs/default/web-node1/app?timestamps=true", nil); !strings.Contains(rr.Body.String(), "Z third\n") {
		t.Errorf("timestamps: %q", rr.Body)
	}
	os.RemoveAll(filepath.Dir(dir))
	if rr := do(t, full, "GET", "/containerLogs/default/web-node1/app", nil); rr.Code != 404 {
		t.Errorf("logs of a removed pod: %d", rr.Code)
	}
}

func TestFollowEndsWhenThePodGoes(t *testing.T) {
	d := testDeps(t)
	clk := clocktesting.NewFakeClock(time.Now())
	d.Clock = clk
	w, err := logs.NewWriter(logs.FilePath(logs.ContainerDir(d.LogDir, "default", "web-node1", "u1", "app"), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stream := w.Stream("stdout")
	io.WriteString(stream, "hello\n")
	srv := httptest.NewServer(FullHandler(d))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/containerLogs/default/web-node1/app?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "hello\n" {
		t.Fatalf("first line: %q %v", line, err)
	}
	done := make(chan error, 1) // buffered: the reader never blocks on exit
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	d.Pods.(*apitest.Pods).Set()
	clk.Step(goneCheck)
	if err := apitest.Await(t, done, "the follow to end after its pod went"); err != nil {
		t.Fatalf("the follow ended with %v", err)
	}
}

func TestHealthz(t *testing.T) {
	var failing error
	h := HealthzHandler([]HealthCheck{{Name: "containerd", Check: func() error { return failing }}})
	if rr := do(t, h, "GET", "/healthz", nil); rr.Code != 200 || rr.Body.String() != "ok" {
		t.Fatalf("healthy: %d %q", rr.Code, rr.Body)
	}
	failing = io.ErrUnexpectedEOF
	if rr := do(t, h, "GET", "/healthz", nil); rr.Code != 500 || !strings.Contains(rr.Body.String(), "[-]containerd failed") {
		t.Fatalf("unhealthy: %d %q", rr.Code, rr.Body)
	}
}
