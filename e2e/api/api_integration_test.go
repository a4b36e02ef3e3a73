//go:build integration

package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testpki"
	"github.com/podsup/podsup/runtime"
)

// secretValue is a Secret's value that must reach the container and never
// the read-only port.
const secretValue = "s3cr3t-value-42"

const apiPods = `apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: ` + secretValue + `}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: creds, secret: {secretName: db}}
  containers:
  - name: web
    image: podsup.test/busybox:1
    command: [sh, -c, 'echo "password is $PASSWORD"; mkdir -p /tmp/www && echo ok > /tmp/www/healthz && httpd -p 8080 -h /tmp/www; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done']
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
    volumeMounts:
    - {name: creds, mountPath: /creds}
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
`

// TestAPI runs one podsup with a pod that has a readiness probe and a
// Secret, and checks every endpoint against it: what each port serves, that
// the read-only port never shows the Secret, who the authenticated port
// lets in, and that a pushed pod survives a restart of podsup.
func TestAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := harness.NewNetwork(t, e.Env, 24)
	pki := t.TempDir()
	ca, other := testpki.NewCA(t, "podsup-clients"), testpki.NewCA(t, "somebody-else")
	tokens := filepath.Join(pki, "tokens.csv")
	os.WriteFile(tokens, []byte("good-token,alice,1000,\"admins\"\n"), 0o600)
	args := append(n.Args(), "--token-auth-file", tokens, "--client-ca-file", ca.WriteFile(t, pki))
	e.Write("web.yaml", apiPods)
	e.Start(args...)
	e.WaitReady("web")
	ro, sock := e.ReadOnlyClient(), e.SocketClient()

	t.Run("healthz", func(t *testing.T) {
		out := e.HealthzClient().Must(t, "GET", "/healthz?verbose", "", 200)
		for _, want := range []string{"[+]containerd ok", "[+]syncloop ok", "[+]sources ok", "ok"} {
			if !strings.Contains(out, want) {
				t.Errorf("/healthz?verbose lacks %q: %s", want, out)
			}
		}
	})

	t.Run("read-only port", func(t *testing.T) {
		if out := ro.Must(t, "GET", "/pods", "", 200); !strings.Contains(out, `"name":"web-node1"`) {
			t.Errorf("/pods lacks the pod: %.300s", out)
		}
		st := ro.Must(t, "GET", "/pods/default/web-node1/status", "", 200)
		if !strings.Contains(st, `"probe":"Readiness"`) || !strings.Contains(st, `"reason":"Started"`) {
			t.Errorf("status lacks the probe or events: %.1000s", st)
		}
		// Each metric the issue names, from this podsup's own pods.
		metrics := ro.Must(t, "GET", "/metrics", "", 200)
		for _, want := range []string{
			`podsup_pods{phase="Running"} 1`, `podsup_containers{state="running"} 1`, `podsup_pods_ready 1`,
			`podsup_container_restarts_total{container="web",namespace="default",pod="web-node1"} 0`,
			`podsup_pod_start_duration_seconds_count 1`, `podsup_prober_probe_total{probe_type="Readiness",result="success"}`,
			`podsup_pod_sync_duration_seconds_count{result="success"}`, `podsup_manifest_problems 0`,
			`podsup_evictions_total 0`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		for _, path := range []string{"/containerLogs/default/web-node1/web", "/events", "/runningpods", "/manifests"} {
			if code, _, err := ro.Do("GET", path, nil); err != nil || code != 404 {
				t.Errorf("read-only port serves %s: %d %v", path, code, err)
			}
		}
		if code, _, _ := ro.Do("PUT", "/manifests/x", strings.NewReader("kind: Pod")); code < 400 || code >= 500 {
			t.Errorf("read-only port took a push: %d", code)
		}
	})

	t.Run("admin socket", func(t *testing.T) {
		logs := sock.Must(t, "GET", "/containerLogs/default/web-node1/web", "", 200)
		if !strings.Contains(logs, "password is "+secretValue) || !strings.Contains(logs, "tick 1\n") {
			t.Fatalf("logs: %.300s", logs)
		}
		if tail := sock.Must(t, "GET", "/containerLogs/default/web-node1/web?tailLines=1", "", 200); strings.Count(tail, "\n") != 1 || !strings.HasPrefix(tail, "tick ") {
			t.Errorf("tailLines=1: %q", tail)
		}
		if ts := sock.Must(t, "GET", "/containerLogs/default/web-node1/web?tailLines=1&timestamps=true", "", 200); !strings.Contains(ts, "Z tick ") {
			t.Errorf("timestamps: %q", ts)
		}
		if out := sock.Must(t, "GET", "/runningpods/", "", 200); !strings.Contains(out, `"name":"web"`) {
			t.Errorf("/runningpods: %.300s", out)
		}
		if out := sock.Must(t, "GET", "/events?pod=default/web-node1", "", 200); !strings.Contains(out, `"reason":"Started"`) {
			t.Errorf("/events: %.300s", out)
		}
		sock.Must(t, "GET", "/containerLogs/default/web-node1/nope", "", 404)
		sock.Must(t, "GET", "/containerLogs/default/..%2F..%2F..%2Fetc/passwd", "", 400)
		if info, err := os.Stat(e.Socket); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("admin socket mode: %v %v", info.Mode(), err)
		}
	})

	t.Run("no secrets on the read-only port", func(t *testing.T) {
		encoded := base64.StdEncoding.EncodeToString([]byte(secretValue))
		for _, path := range []string{"/pods", "/pods/default/web-node1/status", "/metrics", "/ui/state", "/", "/healthz?verbose"} {
			out := ro.Must(t, "GET", path, "", 200)
			if strings.Contains(out, secretValue) || strings.Contains(out, encoded) {
				t.Errorf("the read-only port's %s shows the Secret's value", path)
			}
		}
	})

	t.Run("authentication", func(t *testing.T) {
		good, stranger := ca.Client(t, "alice", "admins"), other.Client(t, "mallory", "admins")
		tests := []struct {
			name string
			c    harness.APIClient
			code int // 0: the handshake fails
		}{
			{"no credentials", e.SecureClient(nil, ""), 401},
			{"bad token", e.SecureClient(nil, "Bearer wrong-token"), 401},
			{"valid token", e.SecureClient(nil, "Bearer good-token"), 200},
			{"client certificate of the CA", e.SecureClient(&good, ""), 200},
			{"client certificate of another CA", e.SecureClient(&stranger, ""), 0},
		}
		for _, tc := range tests {
			code, out, err := tc.c.Do("GET", "/pods", nil)
			switch {
			case tc.code == 0 && err == nil:
				t.Errorf("%s: accepted with %d", tc.name, code)
			case tc.code != 0 && (err != nil || code != tc.code):
				t.Errorf("%s: %d %v %.200s, want %d", tc.name, code, err, out, tc.code)
			}
		}
	})

	t.Run("status page in a browser", func(t *testing.T) {
		dom := browse(t, "http://"+e.ReadOnly+"/")
		for _, want := range []string{
			`data-pod="default/web-node1"`, // the pod
			`data-container="web"`,         // its container
			`>Running<`,                    // running
			`data-field="ready">Ready<`,    // and ready
			`data-probe="web/Readiness"`,   // its readiness probe
			`>success<`,                    // passing
			`>Started<`,                    // an event
			`>node1<`,                      // the node
			`data-condition="Ready"`,       // its condition
		} {
			if !strings.Contains(dom, want) {
				t.Errorf("the page as Chromium shows it lacks %s", want)
			}
		}
		if !regexp.MustCompile(`<div id="error" role="alert"[^>]*></div>`).MatchString(dom) {
			t.Errorf("the page shows an error")
		}
		if strings.Contains(dom, secretValue) {
			t.Errorf("the page shows a secret")
		}
		if t.Failed() {
			t.Logf("DOM: %s", dom)
		}
	})

	// A pushed pod runs, survives a restart of podsup with its container
	// adopted, and goes when deleted. (Not subtests: the harness fails the
	// whole test.)
	pushed := e.SecureClient(nil, "Bearer good-token")
	bad := pushed.Must(t, "PUT", "/manifests/broken", "apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec: {containers: [{name: c}]}\n", 422)
	if !strings.Contains(bad, "spec.containers[0].image") {
		t.Errorf("refused push: %s", bad)
	}
	if out := pushed.Must(t, "PUT", "/manifests/pushed", harness.SleeperPod("pushed", "sleep 1000"), 200); !strings.Contains(out, `"default/pushed-node1"`) {
		t.Fatalf("push answer: %s", out)
	}
	mainRunning := func(p v1.Pod) bool { return harness.ContainerStatus(p, "main").State.Running != nil }
	firstID := harness.ContainerStatus(e.WaitPod("pushed", "running", mainRunning), "main").ContainerID
	e.Stop()
	e.Start(args...)
	if id := harness.ContainerStatus(e.WaitPod("pushed", "running", mainRunning), "main").ContainerID; id != firstID {
		t.Errorf("the pushed pod's container was replaced across the restart: %s, then %s", firstID, id)
	}
	if out := pushed.Must(t, "GET", "/manifests", "", 200); !strings.Contains(out, `"pushed"`) {
		t.Errorf("/manifests: %s", out)
	}
	pushed.Must(t, "DELETE", "/manifests/pushed", "", 200)
	e.WaitConverged(map[string]bool{"web": true})
	left, err := e.Client.Containers(e.Ctx, fmt.Sprintf("labels.%q==%q", runtime.LabelPodKey, "default/pushed-node1"))
	if err != nil || len(left) > 0 {
		t.Errorf("containers of the deleted pod are still there: %d %v", len(left), err)
	}
	pushed.Must(t, "DELETE", "/manifests/pushed", "", 404)
}

// browse loads url in headless Chromium, lets its scripts run, and returns
// the DOM as a person would see it.
func browse(t *testing.T, url string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; hack/setup.sh installs it")
		}
		t.Skip("chromium is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), harness.Patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=5000", "--dump-dom", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v: %s", err, stderr.String())
	}
	return string(out)
}

// TestManifestWarningEvents: what podsup warns of in a pod's manifest is
// among the pod's events, where `podsup describe` and the API show it.
func TestManifestWarningEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("warned.yaml", strings.Replace(harness.SleeperPod("warned", harness.IdleCmd), "spec:\n", "spec:\n  schedulerName: elsewhere\n", 1))
	e.Start()
	e.WaitConverged(map[string]bool{"warned": true})
	out := e.SocketClient().Must(t, "GET", "/events?pod=default/warned-node1", "", 200)
	if !strings.Contains(out, `"type":"Warning","reason":"ManifestWarning"`) || !strings.Contains(out, "warned.yaml: pod warned: spec.schedulerName: ignored: static pods are not scheduled") {
		t.Errorf("/events lacks the warning about spec.schedulerName: %.2000s", out)
	}
}
