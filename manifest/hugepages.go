package manifest

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// HugePageSize is the page size, in bytes, of a hugepages-<size> resource.
func HugePageSize(name v1.ResourceName) (int64, bool) {
	s, ok := strings.CutPrefix(string(name), v1.ResourceHugePagesPrefix)
	if !ok {
		return 0, false
	}
	return parsePageSize(s)
}

func parsePageSize(s string) (int64, bool) {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() <= 0 {
		return 0, false
	}
	return q.Value(), true
}

// PodHugePages is how much of each hugepage size a pod's containers may
// use together, as the kubelet counts a pod's resources: the sum of its
// containers' limits, or the largest init container's if that is more.
func PodHugePages(pod *v1.Pod) map[v1.ResourceName]int64 {
	out := map[v1.ResourceName]int64{}
	for _, c := range pod.Spec.Containers {
		for name, q := range c.Resources.Limits {
			if _, ok := HugePageSize(name); ok {
				out[name] += q.Value()
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		for name, q := range c.Resources.Limits {
			if _, ok := HugePageSize(name); ok {
				out[name] = max(out[name], q.Value())
			}
		}
	}
	return out
}

// EmptyDirHugePageSize is the page size of an emptyDir of medium HugePages
// or HugePages-<size>, as the kubelet picks it: HugePages is the one size
// the pod asks for, HugePages-<size> names one it asks for; 0 for other
// media.
func EmptyDirHugePageSize(pod *v1.Pod, medium v1.StorageMedium) (int64, error) {
	var sizes []int64
	for name := range PodHugePages(pod) {
		size, _ := HugePageSize(name)
		if !slices.Contains(sizes, size) {
			sizes = append(sizes, size)
		}
	}
	switch {
	case medium == v1.StorageMediumHugePages:
		if len(sizes) != 1 {
			return 0, fmt.Errorf("medium HugePages needs the pod's containers to ask for exactly one hugepage size in their limits (they ask for %d); name one with HugePages-<size>", len(sizes))
		}
		return sizes[0], nil
	case strings.HasPrefix(string(medium), string(v1.StorageMediumHugePagesPrefix)):
		size, ok := parsePageSize(strings.TrimPrefix(string(medium), string(v1.StorageMediumHugePagesPrefix)))
		if !ok {
			return 0, fmt.Errorf("%q is not HugePages-<size>", medium)
		}
		if !slices.Contains(sizes, size) {
			return 0, fmt.Errorf("medium %s: no container of the pod asks for hugepages of that size in its limits", medium)
		}
		return size, nil
	}
	return 0, nil
}

func isHugePagesMedium(m v1.StorageMedium) bool {
	return m == v1.StorageMediumHugePages || strings.HasPrefix(string(m), string(v1.StorageMediumHugePagesPrefix))
}

// hugePageResources checks a container's hugepages as the apiserver does:
// a size that parses, an amount that is whole pages, a request equal to the
// limit, and cpu or memory beside them.
func (c *checker) hugePageResources(p string, r *v1.ResourceRequirements) {
	asked := false
	for _, kind := range []struct {
		name string
		list v1.ResourceList
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for name, q := range kind.list {
			if !strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix) {
				continue
			}
			asked = true
			rp := fmt.Sprintf("%s.%s[%s]", p, kind.name, name)
			size, ok := HugePageSize(name)
			if !ok {
				c.fail(rp, "%q is not hugepages-<size>, such as hugepages-2Mi", name)
				continue
			}
			if q.Value()%size != 0 {
				c.fail(rp, "%s is not a whole number of %s pages", q.String(), strings.TrimPrefix(string(name), v1.ResourceHugePagesPrefix))
			}
			if kind.name == "requests" {
				if limit, ok := r.Limits[name]; !ok || limit.Cmp(q) != 0 {
					c.fail(rp, "must equal the limit: hugepages cannot be overcommitted")
				}
			}
		}
	}
	if asked && r.Limits.Cpu().IsZero() && r.Limits.Memory().IsZero() && r.Requests.Cpu().IsZero() && r.Requests.Memory().IsZero() {
		c.fail(p, "hugepages need a cpu or memory request or limit beside them")
	}
}

// hugePageVolumes checks that each emptyDir of medium HugePages has a page
// size the pod asks for.
func (c *checker) hugePageVolumes(pod *v1.Pod) {
	for i, vol := range pod.Spec.Volumes {
		if vol.EmptyDir == nil || !isHugePagesMedium(vol.EmptyDir.Medium) {
			continue
		}
		if _, err := EmptyDirHugePageSize(pod, vol.EmptyDir.Medium); err != nil {
			c.fail(fmt.Sprintf("spec.volumes[%d].emptyDir.medium", i), "%v", err)
		}
	}
}
