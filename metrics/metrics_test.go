package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/health"
	"github.com/podsup/podsup/manifest"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func pod(name string, uid types.UID, seen time.Time, states ...v1.ContainerState) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: uid,
		Annotations: map[string]string{manifest.AnnotationSeen: seen.Format(time.RFC3339Nano)}}}
	for i, st := range states {
		n := string(rune('a' + i))
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: n})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, v1.ContainerStatus{Name: n, State: st, RestartCount: int32(i)})
	}
	return p
}

func running(at time.Time) v1.ContainerState {
	return v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(at)}}
}

var waiting = v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}

func TestPodStartDuration(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	m := New(func() []*v1.Pod { return nil }, clk)

	clk.SetTime(t0.Add(1500 * time.Millisecond))
	m.PodStatus("default/web", pod("web", "u1", t0, running(t0.Add(time.Second)), waiting))
	if got := histCount(t, m); got != 0 {
		t.Fatalf("a pod with a waiting container was counted as started: %d", got)
	}
	clk.SetTime(t0.Add(2 * time.Second))
	p := pod("web", "u1", t0, running(t0.Add(time.Second)), running(t0.Add(2*time.Second)))
	m.PodStatus("default/web", p)
	m.PodStatus("default/web", p) // the same UID again: not a second start
	if got := histCount(t, m); got != 1 {
		t.Fatalf("starts observed: %d, want 1", got)
	}
	if got := histSum(t, m); got != 2 {
		t.Fatalf("start duration %vs, want 2s", got)
	}

	// A new UID (the manifest changed) is a new start.
	clk.SetTime(t0.Add(13 * time.Second))
	m.PodStatus("default/web", pod("web", "u2", t0.Add(10*time.Second), running(t0.Add(11*time.Second)), running(t0.Add(12*time.Second))))
	if got := histCount(t, m); got != 2 {
		t.Fatalf("starts observed: %d, want 2", got)
	}

	// Containers running since before the manifest was seen were adopted
	// from an earlier podsup: not a start.
	m.PodStatus("default/db", pod("db", "u3", t0.Add(10*time.Second), running(t0)))
	if got := histCount(t, m); got != 2 {
		t.Fatalf("an adopted pod was counted: %d starts", got)
	}
}

func TestCountersAndGauges(t *testing.T) {
	pods := []*v1.Pod{
		pod("web", "u1", t0, running(t0), waiting),
		pod("job", "u2", t0, v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0}}),
	}
	pods[0].Status.Phase = v1.PodRunning
	pods[0].Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
	pods[1].Status.Phase = v1.PodSucceeded
	m := New(func() []*v1.Pod { return pods }, clocktesting.NewFakePassiveClock(t0))

	m.SyncDone(3*time.Millisecond, nil)
	m.SyncDone(time.Second, errors.New("containerd down"))
	m.ImagePull(nil)
	m.ImagePull(errors.New("not found"))
	m.ImagePull(errors.New("not found"))
	m.Evicted()
	m.ProbeResult(health.Liveness, health.Success)
	m.ProbeResult(health.Readiness, health.Failure)
	m.ManifestProblems([]manifest.Problem{{Origin: "a.yaml", Err: errors.New("bad")}})
	m.ManifestProblems([]manifest.Problem{{Origin: "a.yaml", Err: errors.New("bad")}, {Origin: "b.yaml", Err: errors.New("worse")}})

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := scrape(t, srv.URL)
	for _, want := range []string{
		`podsup_pods{phase="Running"} 1`,
		`podsup_pods{phase="Succeeded"} 1`,
		`podsup_pods{phase="Failed"} 0`,
		`podsup_pods_ready 1`,
		`podsup_containers{state="running"} 1`,
		`podsup_containers{state="waiting"} 1`,
		`podsup_containers{state="terminated"} 1`,
		`podsup_container_restarts_total{container="b",namespace="default",pod="web"} 1`,
		`podsup_pod_sync_duration_seconds_count{result="success"} 1`,
		`podsup_pod_sync_duration_seconds_count{result="error"} 1`,
		`podsup_image_pulls_total{result="success"} 1`,
		`podsup_image_pulls_total{result="failure"} 2`,
		`podsup_evictions_total 1`,
		`podsup_prober_probe_total{probe_type="Liveness",result="success"} 1`,
		`podsup_prober_probe_total{probe_type="Readiness",result="failure"} 1`,
		`podsup_manifest_errors_total 2`,
		`podsup_manifest_problems 2`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want+" ") {
			t.Errorf("metrics lack %q", want)
		}
	}
	m.ManifestProblems(nil)
	if body := scrape(t, srv.URL); !strings.Contains(body, "podsup_manifest_problems 0\n") {
		t.Errorf("problems still counted after they went")
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// startHist returns the start-duration histogram as gathered.
func startHist(t *testing.T, m *Metrics) *dto.Histogram {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "podsup_pod_start_duration_seconds" {
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatal("no podsup_pod_start_duration_seconds")
	return nil
}

func histCount(t *testing.T, m *Metrics) uint64 { return startHist(t, m).GetSampleCount() }
func histSum(t *testing.T, m *Metrics) float64  { return startHist(t, m).GetSampleSum() }
