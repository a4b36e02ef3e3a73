package qos

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func res(cpuReq, memReq, cpuLim, memLim string) v1.ResourceRequirements {
	r := v1.ResourceRequirements{Requests: v1.ResourceList{}, Limits: v1.ResourceList{}}
	set := func(l v1.ResourceList, name v1.ResourceName, v string) {
		if v != "" {
			l[name] = resource.MustParse(v)
		}
	}
	set(r.Requests, v1.ResourceCPU, cpuReq)
	set(r.Requests, v1.ResourceMemory, memReq)
	set(r.Limits, v1.ResourceCPU, cpuLim)
	set(r.Limits, v1.ResourceMemory, memLim)
	return r
}

func podWith(rs ...v1.ResourceRequirements) *v1.Pod {
	pod := &v1.Pod{}
	for _, r := range rs {
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Resources: r})
	}
	return pod
}

func TestClass(t *testing.T) {
	cases := []struct {
		name string
		pod  *v1.Pod
		want v1.PodQOSClass
	}{
		{"nothing set", podWith(res("", "", "", "")), v1.PodQOSBestEffort},
		{"limits equal requests", podWith(res("100m", "64Mi", "100m", "64Mi")), v1.PodQOSGuaranteed},
		{"two guaranteed containers", podWith(res("1", "1Gi", "1", "1Gi"), res("200m", "8Mi", "200m", "8Mi")), v1.PodQOSGuaranteed},
		{"one request only", podWith(res("100m", "", "", "")), v1.PodQOSBurstable},
		{"memory limit above request", podWith(res("100m", "64Mi", "100m", "128Mi")), v1.PodQOSBurstable},
		{"cpu limit missing", podWith(res("100m", "64Mi", "", "64Mi")), v1.PodQOSBurstable},
		{"one guaranteed, one best effort", podWith(res("1", "1Gi", "1", "1Gi"), res("", "", "", "")), v1.PodQOSBurstable},
		{"zero quantities count as unset", podWith(res("0", "0", "0", "0")), v1.PodQOSBestEffort},
		{"pod-level limits equal requests", podLevel(podWith(res("", "", "", "")), res("1", "1Gi", "1", "1Gi")), v1.PodQOSGuaranteed},
		{"pod-level resources decide over containers'", podLevel(podWith(res("1", "1Gi", "1", "1Gi")), res("1", "", "", "")), v1.PodQOSBurstable},
	}
	for _, tc := range cases {
		if got := Class(tc.pod); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestOOMScoreAdj(t *testing.T) {
	const gi = int64(1 << 30)
	critical := podWith(res("", "", "", ""))
	p := int32(2000001000)
	critical.Spec.Priority, critical.Spec.PriorityClassName = &p, "system-node-critical"
	burst := podWith(res("", "512Mi", "", ""))
	tiny := podWith(res("", "1", "", ""))
	huge := podWith(res("", "16Gi", "", ""))
	cases := []struct {
		name string
		pod  *v1.Pod
		want int
	}{
		{"best effort", podWith(res("", "", "", "")), 1000},
		{"guaranteed", podWith(res("1", "1Gi", "1", "1Gi")), -997},
		{"node critical", critical, -997},
		{"burstable, half a GiB of 4", burst, 875},
		{"burstable, tiny request", tiny, 999},
		{"burstable, more than the machine", huge, 3},
	}
	for _, tc := range cases {
		if got := OOMScoreAdj(tc.pod, &tc.pod.Spec.Containers[0], 4*gi); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestCPU(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	shares := map[string]uint64{"0": 2, "1m": 2, "100m": 102, "1": 1024, "2500m": 2560, "1000": 262144}
	for in, want := range shares {
		if got := CPUShares(q(in)); got != want {
			t.Errorf("shares(%s) = %d, want %d", in, got, want)
		}
	}
	quota := map[string]int64{"0": 0, "1m": 1000, "250m": 25000, "2": 200000}
	for in, want := range quota {
		if got := CPUQuota(q(in)); got != want {
			t.Errorf("quota(%s) = %d, want %d", in, got, want)
		}
	}
}

// podLevel gives a pod pod-level resources.
func podLevel(pod *v1.Pod, r v1.ResourceRequirements) *v1.Pod {
	pod.Spec.Resources = &r
	return pod
}
