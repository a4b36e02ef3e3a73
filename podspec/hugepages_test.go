package podspec

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestHugepageLimits: a container's hugepages-<size> limit is its hugetlb
// limit for that size, in runc's names; the host's other sizes are 0 so
// that it takes none of them; a host without hugepages gets no limits.
func TestHugepageLimits(t *testing.T) {
	c := &v1.Container{Resources: v1.ResourceRequirements{Limits: v1.ResourceList{
		"hugepages-2Mi": resource.MustParse("4Mi"), v1.ResourceMemory: resource.MustParse("64Mi"),
	}}}
	s := apply(t, withHugepageLimits(c, []int64{2 << 20, 1 << 30}))
	want := []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: 0}}
	if got := s.Linux.Resources.HugepageLimits; !reflect.DeepEqual(got, want) {
		t.Errorf("hugepage limits %+v, want %+v", got, want)
	}
	if s := apply(t, withHugepageLimits(&v1.Container{}, nil)); s.Linux.Resources != nil && s.Linux.Resources.HugepageLimits != nil {
		t.Errorf("limits %+v on a host without hugepages", s.Linux.Resources.HugepageLimits)
	}
	noController := Node{HugePageSizes: []int64{2 << 20}}
	if s := apply(t, noController.resourceOpts(&v1.Pod{}, c)...); s.Linux.Resources.HugepageLimits != nil {
		t.Errorf("limits %+v without the hugetlb controller, which runc would refuse", s.Linux.Resources.HugepageLimits)
	}
	for size, name := range map[int64]string{64 << 10: "64KB", 2 << 20: "2MB", 32 << 20: "32MB", 1 << 30: "1GB", 16 << 30: "16GB"} {
		if got := PageSizeName(size); got != name {
			t.Errorf("%d: %s, want %s", size, got, name)
		}
	}
}
