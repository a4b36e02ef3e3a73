package manifest

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

func testPod(source, name, version string) *v1.Pod {
	pod := &v1.Pod{}
	pod.Name, pod.Namespace = name, "default"
	pod.UID = types.UID("uid-" + name + "-" + version)
	pod.Annotations = map[string]string{AnnotationManifest: source + ":" + name}
	return pod
}

func describeDelta(d Delta) string {
	var parts []string
	for _, c := range d.Changes {
		parts = append(parts, fmt.Sprintf("%s %s@%s", c.Kind, c.Pod.Name, strings.TrimPrefix(string(c.Pod.UID), "uid-"+c.Pod.Name+"-")))
	}
	if len(d.Problems) > 0 {
		parts = append(parts, fmt.Sprintf("%d problems", len(d.Problems)))
	}
	if d.SourcesReady {
		parts = append(parts, "ready")
	}
	return strings.Join(parts, ", ")
}

func TestMerger(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	m := NewMerger([]string{SourceFile, SourceHTTP}, clk)
	steps := []struct {
		name string
		in   Update
		want string
	}{
		{"file reports first: adds, not ready", Update{Source: SourceFile, Pods: []*v1.Pod{testPod("file", "a", "1"), testPod("file", "b", "1")}},
			"add a@1, add b@1"},
		{"file drops b before http has spoken: withheld", Update{Source: SourceFile, Pods: []*v1.Pod{testPod("file", "a", "1")}},
			""},
		{"http unreachable: still not ready", Update{Source: SourceHTTP, Stale: true, Problems: []Problem{{Origin: "http://x", Err: fmt.Errorf("down")}}},
			"1 problems"},
		{"http reports: ready, withheld removal happens", Update{Source: SourceHTTP, Pods: []*v1.Pod{testPod("http", "c", "1")}},
			"remove b@1, add c@1, ready"},
		{"same content again: nothing", Update{Source: SourceHTTP, Pods: []*v1.Pod{testPod("http", "c", "1")}},
			"ready"},
		{"new version: update", Update{Source: SourceFile, Pods: []*v1.Pod{testPod("file", "a", "2")}},
			"update a@2, ready"},
		{"http declares a too: file wins, conflict reported", Update{Source: SourceHTTP, Pods: []*v1.Pod{testPod("http", "c", "1"), testPod("http", "a", "9")}},
			"1 problems, ready"},
		{"http goes stale: its pods stay", Update{Source: SourceHTTP, Stale: true, Problems: []Problem{{Origin: "http://x", Err: fmt.Errorf("down")}}},
			"2 problems, ready"},
		{"file removes a: http's a, hidden until now, takes over", Update{Source: SourceFile},
			"update a@9, 1 problems, ready"},
		{"http recovers without a: removed", Update{Source: SourceHTTP, Pods: []*v1.Pod{testPod("http", "c", "1")}},
			"remove a@9, ready"},
	}
	for _, st := range steps {
		clk.SetTime(clk.Now().Add(time.Second))
		got := describeDelta(m.Merge(st.in))
		if got != st.want {
			t.Fatalf("%s: %q, want %q", st.name, got, st.want)
		}
	}
}

func TestMergerConfigSeen(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(t0)
	m := NewMerger([]string{SourceFile}, clk)
	d := m.Merge(Update{Source: SourceFile, Pods: []*v1.Pod{testPod("file", "a", "1")}})
	if got := d.Changes[0].Pod.Annotations[AnnotationSeen]; got != t0.Format(time.RFC3339Nano) {
		t.Errorf("config.seen %q", got)
	}
	clk.SetTime(t0.Add(time.Hour))
	m.Merge(Update{Source: SourceFile, Pods: []*v1.Pod{testPod("file", "a", "1")}})
	d = m.Merge(Update{Source: SourceFile, Pods: []*v1.Pod{testPod("file", "a", "2")}})
	if got := d.Changes[0].Pod.Annotations[AnnotationSeen]; got != t0.Add(time.Hour).Format(time.RFC3339Nano) {
		t.Errorf("config.seen of the new version %q", got)
	}
}

func TestMergerConfigObjects(t *testing.T) {
	m := NewMerger([]string{SourceFile, SourceAPI}, clocktesting.NewFakePassiveClock(time.Now()))
	cm := func(name, v string) *v1.ConfigMap {
		c := &v1.ConfigMap{Data: map[string]string{"v": v}}
		c.Name, c.Namespace = name, "default"
		return c
	}
	m.Merge(Update{Source: SourceAPI, ConfigMaps: []*v1.ConfigMap{cm("x", "api"), cm("y", "api")}})
	d := m.Merge(Update{Source: SourceFile, ConfigMaps: []*v1.ConfigMap{cm("x", "file")}})
	var got []string
	for k, c := range d.ConfigMaps {
		got = append(got, k+"="+c.Data["v"])
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "default/x=file default/y=api" {
		t.Errorf("config maps %v", got)
	}
}

// TestWarningsOncePerPodVersion: the warnings about a pod read from a
// directory reach the supervisor with the pod's Add, not again while the
// manifest stays as it is, and again with the Modify of a new version.
func TestWarningsOncePerPodVersion(t *testing.T) {
	h := startDir(t, "")
	m := NewMerger([]string{SourceFile}, clocktesting.NewFakePassiveClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	warnedOf := func(d Delta) string {
		var parts []string
		for _, c := range d.Changes {
			for _, w := range c.Warnings {
				parts = append(parts, fmt.Sprintf("%s %s: %s", c.Kind, c.Pod.Name, w.Field))
			}
		}
		return strings.Join(parts, "\n")
	}
	h.expect("") // the empty directory, so the write below is an update of its own
	pod := podYAML("web", "busybox:1") + "    imagePullPolcy: Always\n  schedulerName: elsewhere\n"
	h.write("web.yaml", pod)
	u := h.next()
	want := "add web-node1: spec.containers[0].imagePullPolcy\nadd web-node1: spec.schedulerName"
	if got := warnedOf(m.Merge(u)); got != want {
		t.Errorf("first read warned of:\n%s\nwant:\n%s", got, want)
	}
	if got := warnedOf(m.Merge(u)); got != "" {
		t.Errorf("the same snapshot again warned of:\n%s", got)
	}
	h.write("web.yaml", strings.Replace(pod, "busybox:1", "busybox:2", 1))
	want = strings.ReplaceAll(want, "add", "update")
	if got := warnedOf(m.Merge(h.next())); got != want {
		t.Errorf("a new version warned of:\n%s\nwant:\n%s", got, want)
	}
}
