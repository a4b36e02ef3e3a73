package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestHugePageAdmission: the host's hugepages are read from sysfs; a pod
// asking for more of a size than the host reserves, or for a size it does
// not have, is refused, as the kubelet refuses it, with the numbers.
func TestHugePageAdmission(t *testing.T) {
	dir := t.TempDir()
	for name, n := range map[string]string{"hugepages-2048kB": "4\n", "hugepages-1048576kB": "0\n"} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "nr_hugepages"), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pages := hostHugePages(dir)
	if want := map[int64]int64{2 << 20: 4, 1 << 30: 0}; !reflect.DeepEqual(pages, want) {
		t.Fatalf("host hugepages %v, want %v", pages, want)
	}
	pod := func(limits ...string) *v1.Pod {
		p := &v1.Pod{}
		for i := 0; i < len(limits); i += 2 {
			p.Spec.Containers = append(p.Spec.Containers, v1.Container{Resources: v1.ResourceRequirements{
				Limits: v1.ResourceList{v1.ResourceName(limits[i]): resource.MustParse(limits[i+1])}}})
		}
		return p
	}
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want string // "": admitted
	}{
		{"within", pod("hugepages-2Mi", "4Mi", "hugepages-2Mi", "4Mi"), ""},
		{"no hugepages", pod(), ""},
		{"too many", pod("hugepages-2Mi", "6Mi", "hugepages-2Mi", "4Mi"), "OutOfhugepages-2Mi: Node didn't have enough resource: hugepages-2Mi, requested: 10485760, capacity: 8388608; the host has 4 pages of that size reserved"},
		{"none reserved", pod("hugepages-1Gi", "1Gi"), "OutOfhugepages-1Gi: Node didn't have enough resource: hugepages-1Gi, requested: 1073741824, capacity: 0; the host has 0 pages"},
		{"size the host lacks", pod("hugepages-16Gi", "16Gi"), "OutOfhugepages-16Gi: Node didn't have enough resource: hugepages-16Gi, requested: 17179869184, capacity: 0; the host has no hugepages of that size"},
	} {
		ok, reason, message := admitHugePages(tc.pod, pages)
		if tc.want == "" {
			if !ok {
				t.Errorf("%s: refused: %s: %s", tc.name, reason, message)
			}
			continue
		}
		if got := reason + ": " + message; ok || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: admitted %v, %q; want %q", tc.name, ok, got, tc.want)
		}
	}
}
