package podspec

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/podsup/podsup/cgroups"
)

func TestPodLimits(t *testing.T) {
	if _, ok := PodLimits(&v1.Pod{}); ok {
		t.Error("limits for a pod without pod-level resources")
	}
	pod := &v1.Pod{Spec: v1.PodSpec{Resources: &v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")},
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("64Mi")},
	}}}
	got, ok := PodLimits(pod)
	want := cgroups.PodLimits{MemoryBytes: 64 << 20, CPUQuotaUsecs: 50000, CPUPeriodUsecs: 100000, CPUShares: 256}
	if !ok || got != want {
		t.Errorf("PodLimits = %+v, %v; want %+v", got, ok, want)
	}
}
