package podspec

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/manifest"
)

// PageSizeName is a hugepage size as the hugetlb cgroup names it (2MB,
// 1GB), which is how runc takes it.
func PageSizeName(size int64) string {
	switch {
	case size >= 1<<30 && size%(1<<30) == 0:
		return fmt.Sprintf("%dGB", size>>30)
	case size >= 1<<20 && size%(1<<20) == 0:
		return fmt.Sprintf("%dMB", size>>20)
	}
	return fmt.Sprintf("%dKB", size>>10)
}

// withHugepageLimits sets the container's hugetlb limits, as the kubelet
// does: its hugepages-<size> limit for each size the host has, and 0 for
// the sizes it does not ask for, so that it cannot take pages it was not
// given.
func withHugepageLimits(c *v1.Container, hostSizes []int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		limits := map[int64]uint64{}
		for _, size := range hostSizes {
			limits[size] = 0
		}
		for name, q := range c.Resources.Limits {
			if size, ok := manifest.HugePageSize(name); ok {
				limits[size] = uint64(q.Value())
			}
		}
		if len(limits) == 0 {
			return nil
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.HugepageLimits = nil
		for _, size := range slices.Sorted(maps.Keys(limits)) {
			s.Linux.Resources.HugepageLimits = append(s.Linux.Resources.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: PageSizeName(size), Limit: limits[size]})
		}
		return nil
	}
}
