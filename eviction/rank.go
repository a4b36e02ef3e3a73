package eviction

import (
	"sort"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/podsup/podsup/qos"
)

// candidate is a pod that may be evicted, with what it uses.
type candidate struct {
	pod   *v1.Pod
	key   string
	usage PodUsage
}

// requests is what a pod requests of a resource as the scheduler and the
// kubelet count it (component-helpers' PodRequests): its app containers and
// native sidecars together, or its largest init container if that is more,
// or its pod-level request. Overhead is left out: podsup ignores it.
func requests(pod *v1.Pod, name v1.ResourceName) uint64 {
	q := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{ExcludeOverhead: true})[name]
	return uint64(max(q.Value(), 0))
}

func priority(pod *v1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	return 0
}

// qosRank orders QoS classes: BestEffort goes first, Guaranteed last.
func qosRank(pod *v1.Pod) int {
	switch qos.Class(pod) {
	case v1.PodQOSBestEffort:
		return 0
	case v1.PodQOSBurstable:
		return 1
	}
	return 2
}

// usageOf is what a candidate uses of r, and what it requests of it.
func usageOf(c candidate, r Resource) (used, requested uint64) {
	switch r {
	case Memory:
		return c.usage.MemoryWorkingSet, requests(c.pod, v1.ResourceMemory)
	case NodeFs:
		return c.usage.Ephemeral, requests(c.pod, v1.ResourceEphemeralStorage)
	case ImageFs:
		return c.usage.Rootfs, requests(c.pod, v1.ResourceEphemeralStorage)
	}
	return c.usage.Processes, 0
}

// rank orders the candidates for eviction under pressure on r, first to go
// first, as the kubelet does: pods using more than they request, then the
// lower priority, then (podsup's addition, so that equal priorities fall
// by QoS class) BestEffort before Burstable before Guaranteed, then the
// larger use beyond the request. Process IDs are requested by nobody, so
// for them only priority, class and use count.
func rank(cands []candidate, r Resource) {
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		ua, ra := usageOf(a, r)
		ub, rb := usageOf(b, r)
		if r != PIDs {
			if ea, eb := ua > ra, ub > rb; ea != eb {
				return ea
			}
		}
		if pa, pb := priority(a.pod), priority(b.pod); pa != pb {
			return pa < pb
		}
		if qa, qb := qosRank(a.pod), qosRank(b.pod); qa != qb {
			return qa < qb
		}
		return int64(ua)-int64(ra) > int64(ub)-int64(rb)
	})
}
