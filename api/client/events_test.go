package client

import (
	"context"
	"strings"
	"testing"

	"github.com/podsup/podsup/api/apitest"
	"github.com/podsup/podsup/events"
)

func TestEvents(t *testing.T) {
	fx := newFixture(t)
	fx.pods.Set(staticPod("default", "web", "main"), staticPod("kube-system", "dns", "main"))
	fx.events.Eventf(events.Normal, "Started", "default/web-node1", "main", "Started container main")
	fx.events.Eventf(events.Warning, "BackOff", "kube-system/dns-node1", "main", "Back-off restarting failed container main")
	fx.events.Eventf(events.Warning, "BackOff", "kube-system/dns-node1", "main", "Back-off restarting failed container main")
	fx.events.Eventf(events.Normal, "Killing", "default/gone-node1", "", "Stopping pod")

	tests := []struct {
		name     string
		args     []string
		want     []string // reasons, in order
		header   string
		wantErr  string
		wantCode int
	}{
		{name: "all", want: []string{"Started", "BackOff", "Killing"}, header: "NAMESPACE LAST SEEN TYPE REASON OBJECT CONTAINER MESSAGE"},
		{name: "namespace", args: []string{"-n", "kube-system"}, want: []string{"BackOff"}, header: "LAST SEEN TYPE REASON OBJECT CONTAINER MESSAGE"},
		{name: "pod by declared name", args: []string{"--pod", "web"}, want: []string{"Started"}},
		{name: "pod in a namespace", args: []string{"--pod", "dns", "-n", "kube-system"}, want: []string{"BackOff"}},
		{name: "pod that is gone", args: []string{"--pod", "gone-node1"}, want: []string{"Killing"}},
		{name: "pod with none", args: []string{"--pod", "nope"}},
		{name: "argument", args: []string{"web"}, wantErr: "--pod", wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fx.run(append([]string{"events"}, tc.args...)...)
			if r.code() != tc.wantCode || tc.wantErr != "" && !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Fatalf("exit %d (%v), want %d %q", r.code(), r.err, tc.wantCode, tc.wantErr)
			}
			if tc.wantErr != "" {
				return
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(tc.want) == 0 {
				if r.stdout != "" || !strings.Contains(r.stderr, "No events found") {
					t.Errorf("stdout %q, stderr %q; want no events found", r.stdout, r.stderr)
				}
				return
			}
			if tc.header != "" && spaces.ReplaceAllString(lines[0], " ") != tc.header {
				t.Errorf("header %q, want %q", lines[0], tc.header)
			}
			var reasons []string
			for _, l := range lines[1:] {
				for _, reason := range []string{"Started", "BackOff", "Killing"} {
					if strings.Contains(l, reason) {
						reasons = append(reasons, reason)
					}
				}
			}
			if strings.Join(reasons, " ") != strings.Join(tc.want, " ") {
				t.Errorf("listed %q, want %q:\n%s", reasons, tc.want, r.stdout)
			}
		})
	}
	r := fx.run("events", "-n", "kube-system")
	if !strings.Contains(r.stdout, "(x2)") || !strings.Contains(r.stdout, "pod/dns-node1") {
		t.Errorf("a repeated event shows its count and its pod:\n%s", r.stdout)
	}
}

// TestEventsWatch: the recorded events, then new ones as they happen, of
// the pod asked for only.
func TestEventsWatch(t *testing.T) {
	fx := newFixture(t)
	fx.pods.Set(staticPod("default", "web", "main"))
	fx.events.Eventf(events.Normal, "Pulled", "default/web-node1", "main", "pulled before")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := apitest.NewOutput()
	done := make(chan result, 1) // buffered: the command never blocks on exit
	go func() {
		done <- runCLI(ctx, out, "events", "--server", "unix://"+fx.socket, "-w", "--pod", "web")
	}()
	out.WaitFor(t, "pulled before")
	fx.events.Eventf(events.Normal, "Started", "default/other-node1", "main", "another pod")
	fx.events.Eventf(events.Warning, "Unhealthy", "default/web-node1", "main", "Liveness probe failed:\nconnection refused")
	out.WaitFor(t, "Liveness probe failed: connection refused")
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if strings.Contains(r.stdout, "another pod") {
		t.Errorf("the watch shows another pod's event:\n%s", r.stdout)
	}
	if n := strings.Count(r.stdout, "LAST SEEN"); n != 1 {
		t.Errorf("the header is printed %d times:\n%s", n, r.stdout)
	}
}
