package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

var now = time.Date(2024, 1, 2, 15, 4, 5, 0, time.UTC)

// aged is a pod started d before now.
func aged(p *v1.Pod, d time.Duration) *v1.Pod {
	p.Status.StartTime = &metav1.Time{Time: now.Add(-d)}
	return p
}

func TestPodRow(t *testing.T) {
	crashing := staticPod("default", "crash", "main")
	crashing.Status.ContainerStatuses[0] = v1.ContainerStatus{Name: "main", RestartCount: 3,
		State:                v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1, FinishedAt: metav1.Time{Time: now.Add(-90 * time.Second)}}}}
	initWaiting := staticPod("default", "init", "main")
	initWaiting.Spec.InitContainers = []v1.Container{{Name: "setup"}}
	initWaiting.Status.InitContainerStatuses = []v1.ContainerStatus{{Name: "setup", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}}
	notReady := staticPod("default", "half", "a", "b")
	notReady.Status.ContainerStatuses[1].Ready = false
	always, started := v1.ContainerRestartPolicyAlways, true
	withSidecar := staticPod("default", "side", "main")
	withSidecar.Spec.InitContainers = []v1.Container{{Name: "proxy", RestartPolicy: &always}}
	withSidecar.Status.InitContainerStatuses = []v1.ContainerStatus{{Name: "proxy", Ready: true, Started: &started, RestartCount: 2,
		State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}}
	tests := []struct {
		name string
		pod  *v1.Pod
		want Row
	}{
		{name: "running", pod: aged(staticPod("default", "web", "main"), 2*time.Hour), want: Row{Ready: "1/1", Status: "Running", Restarts: "0", Age: "120m"}},
		{name: "crash loop", pod: crashing, want: Row{Ready: "0/1", Status: "CrashLoopBackOff", Restarts: "3 (90s ago)", Age: "<unknown>"}},
		{name: "init", pod: initWaiting, want: Row{Ready: "0/1", Status: "Init:0/1", Restarts: "0", Age: "<unknown>"}},
		{name: "a started sidecar counts among the containers", pod: withSidecar, want: Row{Ready: "2/2", Status: "Running", Restarts: "2", Age: "<unknown>"}},
		{name: "not all ready", pod: notReady, want: Row{Ready: "1/2", Status: "Running", Restarts: "0", Age: "<unknown>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PodRow(tc.pod, now); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPrintPods(t *testing.T) {
	list := &v1.PodList{Items: []v1.Pod{*aged(staticPod("default", "web", "main"), time.Minute), *aged(staticPod("kube-system", "dns", "a", "b"), 3*time.Hour)}}
	tests := []struct {
		output string
		want   string
	}{
		{output: "", want: "" +
			"NAMESPACE     NAME        READY   STATUS    RESTARTS   AGE\n" +
			"default       web-node1   1/1     Running   0          60s\n" +
			"kube-system   dns-node1   2/2     Running   0          3h\n"},
		{output: "wide", want: "" +
			"NAMESPACE     NAME        READY   STATUS    RESTARTS   AGE   IP          NODE\n" +
			"default       web-node1   1/1     Running   0          60s   10.88.0.7   node1\n" +
			"kube-system   dns-node1   2/2     Running   0          3h    10.88.0.7   node1\n"},
	}
	for _, tc := range tests {
		t.Run("-o "+tc.output, func(t *testing.T) {
			var out bytes.Buffer
			if err := printPods(&out, list, tc.output, now); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", out.String(), tc.want)
			}
		})
	}
	for _, output := range []string{"json", "yaml"} {
		t.Run("-o "+output, func(t *testing.T) {
			var out bytes.Buffer
			if err := printPods(&out, list, output, now); err != nil {
				t.Fatal(err)
			}
			var back v1.PodList
			if err := yaml.Unmarshal(out.Bytes(), &back); err != nil || len(back.Items) != 2 || back.Items[1].Name != "dns-node1" {
				t.Errorf("output does not read back as the list: %v\n%s", err, out.String())
			}
		})
	}
}

func TestPodsCommand(t *testing.T) {
	fx := newFixture(t)
	fx.pods.Set(staticPod("default", "web", "main"), staticPod("kube-system", "dns", "main"))
	tests := []struct {
		name     string
		args     []string
		want     []string // names listed
		wantErr  string
		wantCode int
	}{
		{name: "all", want: []string{"web-node1", "dns-node1"}},
		{name: "namespace", args: []string{"-n", "kube-system"}, want: []string{"dns-node1"}},
		{name: "by name", args: []string{"web"}, want: []string{"web-node1"}},
		{name: "by namespace/name", args: []string{"kube-system/dns", "-o", "wide"}, want: []string{"dns-node1"}},
		{name: "missing name", args: []string{"web", "nope"}, want: []string{"web-node1"}, wantErr: "pod default/nope not found", wantCode: 1},
		{name: "none in a namespace", args: []string{"-n", "nope"}},
		{name: "bad output", args: []string{"-o", "xml"}, wantErr: `-o "xml": want wide, json or yaml`, wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fx.run(append([]string{"pods"}, tc.args...)...)
			if r.code() != tc.wantCode || tc.wantErr != "" && !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Fatalf("exit %d (%v), want %d %q", r.code(), r.err, tc.wantCode, tc.wantErr)
			}
			var names []string
			if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) > 1 {
				for _, line := range lines[1:] {
					names = append(names, strings.Fields(line)[1])
				}
			}
			if strings.Join(names, " ") != strings.Join(tc.want, " ") {
				t.Errorf("listed %q, want %q\n%s", names, tc.want, r.stdout)
			}
		})
	}
}

// TestPodWatchStep: the table first, then only the rows that change, and a
// Deleted row for a pod that goes; ages alone are no change, a pod
// replaced is.
func TestPodWatchStep(t *testing.T) {
	web := staticPod("default", "web", "main")
	db := staticPod("default", "db", "main")
	var out bytes.Buffer
	w := &podWatch{out: &out}
	step := func(at time.Time, pods ...*v1.Pod) string {
		t.Helper()
		out.Reset()
		list := &v1.PodList{}
		for _, p := range pods {
			list.Items = append(list.Items, *p.DeepCopy())
		}
		if err := w.step(list, at); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := step(now, web, db); !strings.HasPrefix(got, "NAMESPACE") || strings.Count(got, "\n") != 3 {
		t.Errorf("first step printed\n%s\nwant the header and both pods", got)
	}
	if got := step(now.Add(time.Minute), web, db); got != "" {
		t.Errorf("nothing changed but the age, yet it printed\n%s", got)
	}
	web.Status.ContainerStatuses[0].Ready = false
	if got := step(now, web, db); !strings.Contains(got, "web-node1") || strings.Contains(got, "db-node1") || !strings.Contains(got, "0/1") {
		t.Errorf("web turned unready; printed\n%s", got)
	}
	if got := step(now, web); !strings.Contains(got, "db-node1") || !strings.Contains(got, "Deleted") {
		t.Errorf("db went; printed\n%s", got)
	}
	web.UID = "uid-web-2"
	if got := step(now, web); !strings.Contains(got, "web-node1") {
		t.Errorf("web was replaced, with a row that looks the same; printed\n%s", got)
	}
}

func TestPodWatchJSON(t *testing.T) {
	var out bytes.Buffer
	w := &podWatch{out: &out, output: "json"}
	if err := w.step(&v1.PodList{Items: []v1.Pod{*staticPod("default", "web", "main")}}, now); err != nil {
		t.Fatal(err)
	}
	var p v1.Pod
	if err := json.Unmarshal(out.Bytes(), &p); err != nil || p.Name != "web-node1" || p.Kind != "Pod" {
		t.Errorf("got %v:\n%s", err, out.String())
	}
}

// TestPodWatchRun: the loop reads again until its context ends, says once
// that podsup does not answer, and stops cleanly.
func TestPodWatchRun(t *testing.T) {
	var out, errOut bytes.Buffer
	w := &podWatch{out: &out, interval: time.Millisecond}
	web := staticPod("default", "web", "main")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	fetch := func(context.Context) (*v1.PodList, error) {
		calls++
		switch {
		case calls <= 3:
			return nil, errors.New("podsup restarts")
		case calls == 10:
			cancel()
		}
		return &v1.PodList{Items: []v1.Pod{*web}}, nil
	}
	if err := w.run(ctx, &errOut, fetch); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(errOut.String(), "podsup restarts"); n != 1 {
		t.Errorf("the error was said %d times, want once:\n%s", n, errOut.String())
	}
	if !strings.Contains(out.String(), "web-node1") || strings.Count(out.String(), "web-node1") != 1 {
		t.Errorf("output\n%s\nwant web listed once", out.String())
	}
}
