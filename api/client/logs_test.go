package client

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/api/apitest"
)

func TestLogs(t *testing.T) {
	fx := newFixture(t)
	web := staticPod("default", "web", "main")
	two := staticPod("default", "two", "app", "side")
	fx.pods.Set(web, two)
	fx.writeLog(web, "main", 0, "first one", "first two")
	fx.writeLog(web, "main", 1, "second one", "second two", "second three")
	fx.writeLog(two, "side", 0, "side line")

	tests := []struct {
		name     string
		args     []string
		want     string // the whole output
		wantErr  string
		wantCode int
	}{
		{name: "only container, by declared name", args: []string{"web"}, want: "second one\nsecond two\nsecond three\n"},
		{name: "static name", args: []string{"web-node1"}, want: "second one\nsecond two\nsecond three\n"},
		{name: "namespace/name", args: []string{"default/web"}, want: "second one\nsecond two\nsecond three\n"},
		{name: "tail", args: []string{"web", "--tail", "1"}, want: "second three\n"},
		{name: "flags after the pod", args: []string{"web", "--tail=2"}, want: "second two\nsecond three\n"},
		{name: "previous", args: []string{"-p", "web"}, want: "first one\nfirst two\n"},
		{name: "previous of a first instance", args: []string{"two", "-c", "side", "--previous"}, wantErr: `previous terminated container "side" of pod default/two-node1 not found`, wantCode: 1},
		{name: "container", args: []string{"two", "-c", "side"}, want: "side line\n"},
		{name: "several containers: the first", args: []string{"two"}, wantErr: `no logs for container "app" of pod default/two-node1`, wantCode: 1},
		{name: "unknown container", args: []string{"two", "-c", "nope"}, wantErr: "container nope is not valid for pod two-node1", wantCode: 1},
		{name: "no logs yet", args: []string{"two", "-c", "app"}, wantErr: `no logs for container "app" of pod default/two-node1`, wantCode: 1},
		{name: "unknown pod", args: []string{"nope"}, wantErr: "pod default/nope not found", wantCode: 1},
		{name: "other namespace", args: []string{"-n", "kube-system", "web"}, wantErr: "pod kube-system/web not found", wantCode: 1},
		{name: "no pod", args: nil, wantErr: "name one pod", wantCode: 2},
		{name: "since and since-time", args: []string{"web", "--since", "1m", "--since-time", "2024-01-02T15:04:05Z"}, wantErr: "give one", wantCode: 2},
		{name: "bad since-time", args: []string{"web", "--since-time", "yesterday"}, wantErr: "RFC 3339", wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fx.run(append([]string{"logs"}, tc.args...)...)
			if r.code() != tc.wantCode {
				t.Fatalf("exit %d (%v), want %d", r.code(), r.err, tc.wantCode)
			}
			if tc.wantErr != "" {
				if !strings.Contains(r.err.Error(), tc.wantErr) {
					t.Fatalf("error %q, want it to say %q", r.err, tc.wantErr)
				}
				return
			}
			if r.stdout != tc.want {
				t.Errorf("output %q, want %q", r.stdout, tc.want)
			}
		})
	}
}

func TestLogsTimestamps(t *testing.T) {
	fx := newFixture(t)
	web := staticPod("default", "web", "main")
	fx.pods.Set(web)
	fx.writeLog(web, "main", 0, "hello")
	r := fx.run("logs", "web", "--timestamps", "--since", "1h")
	if r.err != nil {
		t.Fatal(r.err)
	}
	stamp, line, ok := strings.Cut(strings.TrimSpace(r.stdout), " ")
	if !ok || line != "hello" || !strings.Contains(stamp, "T") {
		t.Errorf("output %q, want an RFC 3339 time, a space and the line", r.stdout)
	}
}

// TestLogsFollowAcrossRestart: a follow prints the new instance's lines
// after the container restarts, and ends cleanly when it is stopped.
func TestLogsFollowAcrossRestart(t *testing.T) {
	fx := newFixture(t)
	web := staticPod("default", "web", "main")
	fx.pods.Set(web)
	fx.writeLog(web, "main", 0, "before restart")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := apitest.NewOutput()
	done := make(chan result, 1) // buffered: the command never blocks on exit
	go func() {
		done <- runCLI(ctx, out, "logs", "--server", "unix://"+fx.socket, "web", "-f")
	}()
	out.WaitFor(t, "before restart\n")
	fx.writeLog(web, "main", 1, "after restart")
	out.WaitFor(t, "after restart\n")
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatalf("a stopped follow failed: %v", r.err)
	}
	if want := "before restart\nafter restart\n"; r.stdout != want {
		t.Errorf("output %q, want %q", r.stdout, want)
	}
}

func TestPickContainer(t *testing.T) {
	withInit := staticPod("default", "x", "a", "b")
	withInit.Spec.InitContainers = []v1.Container{{Name: "init"}}
	annotated := staticPod("default", "y", "a", "b")
	annotated.Annotations[defaultContainerAnnotation] = "b"
	tests := []struct {
		name, flag, want, wantErr, note string
		pod                             *v1.Pod
	}{
		{name: "only", pod: staticPod("default", "z", "a"), want: "a"},
		{name: "annotated default", pod: annotated, want: "b"},
		{name: "init by name", pod: withInit, flag: "init", want: "init"},
		{name: "several: the first, said as kubectl says it", pod: withInit, want: "a", note: `Defaulted container "a" out of: a, b, init (init)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, note, err := pickContainer(tc.pod, tc.flag)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || note != tc.note {
				t.Errorf("got %q, %q, %v; want %q, %q", got, note, err, tc.want, tc.note)
			}
		})
	}
}
