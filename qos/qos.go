// Package qos computes a pod's Quality of Service class and the cgroup and
// OOM settings that follow from its resources, with the kubelet's formulas,
// so that podsup's pods compete for a machine as a kubelet's would.
package qos

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// OOM score adjustments, as the kubelet sets them.
const (
	// CriticalOOMScoreAdj protects Guaranteed and node-critical pods.
	CriticalOOMScoreAdj = -997
	// SandboxOOMScoreAdj protects the pause container, which holds the pod.
	SandboxOOMScoreAdj = -998
	// BestEffortOOMScoreAdj makes BestEffort pods the OOM killer's first choice.
	BestEffortOOMScoreAdj = 1000
)

// CPU cgroup settings, as the kubelet computes them.
const (
	minShares     = 2
	maxShares     = 262144
	sharesPerCPU  = 1024
	milliPerCPU   = 1000
	minQuotaUsecs = 1000
	// CFSPeriodUsecs is the CFS period podsup sets with a CPU limit.
	CFSPeriodUsecs = 100000
)

// SystemCriticalPriority is the lowest priority of a critical pod.
const SystemCriticalPriority = int32(2000000000)

// Class is the pod's QoS class: Guaranteed when every container (init
// containers included) has CPU and memory limits equal to its requests,
// BestEffort when none has any CPU or memory request or limit, Burstable
// otherwise. A pod with pod-level resources (spec.resources) is classed by
// them alone, as the kubelet does since Kubernetes 1.34.
func Class(pod *v1.Pod) v1.PodQOSClass {
	requests, limits := v1.ResourceList{}, v1.ResourceList{}
	guaranteed := true
	all := append(append([]v1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...)
	if HasPodResources(pod) {
		all = []v1.Container{{Resources: *pod.Spec.Resources}}
	}
	for _, c := range all {
		add(requests, c.Resources.Requests)
		found := add(limits, c.Resources.Limits)
		if !found[v1.ResourceCPU] || !found[v1.ResourceMemory] {
			guaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return v1.PodQOSBestEffort
	}
	if guaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				guaranteed = false
				break
			}
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return v1.PodQOSGuaranteed
	}
	return v1.PodQOSBurstable
}

// add sums the positive CPU and memory quantities of list into sum and
// reports which it found.
func add(sum, list v1.ResourceList) map[v1.ResourceName]bool {
	found := map[v1.ResourceName]bool{}
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		q, ok := list[name]
		if !ok || q.Sign() <= 0 {
			continue
		}
		found[name] = true
		total := q.DeepCopy()
		if prev, ok := sum[name]; ok {
			total.Add(prev)
		}
		sum[name] = total
	}
	return found
}

// IsCritical reports whether the pod has a system-critical priority.
func IsCritical(pod *v1.Pod) bool {
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= SystemCriticalPriority
}

// OOMScoreAdj is the kubelet's oom_score_adj for a container: -997 for
// node-critical and Guaranteed pods, 1000 for BestEffort, and for Burstable
// 1000 minus its memory request in thousandths of the machine's memory,
// kept within [3, 999].
func OOMScoreAdj(pod *v1.Pod, c *v1.Container, memoryCapacity int64) int {
	if IsCritical(pod) && pod.Spec.PriorityClassName == "system-node-critical" {
		return CriticalOOMScoreAdj
	}
	switch Class(pod) {
	case v1.PodQOSGuaranteed:
		return CriticalOOMScoreAdj
	case v1.PodQOSBestEffort:
		return BestEffortOOMScoreAdj
	}
	if memoryCapacity <= 0 {
		return BestEffortOOMScoreAdj - 1
	}
	req := c.Resources.Requests.Memory().Value()
	adj := 1000 - (1000*req)/memoryCapacity
	if adj < 1000+CriticalOOMScoreAdj {
		return 1000 + CriticalOOMScoreAdj
	}
	if adj >= BestEffortOOMScoreAdj {
		return BestEffortOOMScoreAdj - 1
	}
	return int(adj)
}

// HasPodResources reports whether the pod sets pod-level CPU or memory
// requests or limits.
func HasPodResources(pod *v1.Pod) bool {
	r := pod.Spec.Resources
	if r == nil {
		return false
	}
	for _, list := range []v1.ResourceList{r.Requests, r.Limits} {
		if _, ok := list[v1.ResourceCPU]; ok {
			return true
		}
		if _, ok := list[v1.ResourceMemory]; ok {
			return true
		}
	}
	return false
}

// CPUShares converts a CPU request to cgroup cpu.shares.
func CPUShares(request *resource.Quantity) uint64 {
	milli := request.MilliValue()
	if milli <= 0 {
		return minShares
	}
	shares := milli * sharesPerCPU / milliPerCPU
	switch {
	case shares < minShares:
		return minShares
	case shares > maxShares:
		return maxShares
	}
	return uint64(shares)
}

// CPUQuota converts a CPU limit to a CFS quota for CFSPeriodUsecs; 0 means
// no limit.
func CPUQuota(limit *resource.Quantity) int64 {
	milli := limit.MilliValue()
	if milli <= 0 {
		return 0
	}
	quota := milli * CFSPeriodUsecs / milliPerCPU
	if quota < minQuotaUsecs {
		return minQuotaUsecs
	}
	return quota
}
