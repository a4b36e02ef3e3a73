package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/manifest"
)

// hugepagesDir has a directory per hugepage size the kernel supports,
// hugepages-<size>kB, with the number of pages reserved in nr_hugepages.
const hugepagesDir = "/sys/kernel/mm/hugepages"

// hostHugePages are the host's hugepage sizes, in bytes, and how many
// pages of each are reserved now.
func hostHugePages(dir string) map[int64]int64 {
	entries, _ := os.ReadDir(dir)
	out := map[int64]int64{}
	for _, e := range entries {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		size, err := strconv.ParseInt(strings.TrimSuffix(kb, "kB"), 10, 64)
		if err != nil {
			continue
		}
		data, _ := os.ReadFile(filepath.Join(dir, e.Name(), "nr_hugepages"))
		n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		out[size<<10] = n
	}
	return out
}

// admitHugePages refuses a pod whose containers ask for more hugepages of
// a size than the host has reserved, or for a size it does not have, as
// the kubelet's admission refuses a pod its node lacks the resource for
// (OutOf<resource>). It counts the host's capacity, not what other pods
// hold: the hugetlb cgroup limits each container, and the kernel refuses a
// page when none is free.
func admitHugePages(pod *v1.Pod, pages map[int64]int64) (ok bool, reason, message string) {
	need := manifest.PodHugePages(pod)
	names := make([]v1.ResourceName, 0, len(need))
	for name := range need {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		size, _ := manifest.HugePageSize(name)
		n, has := pages[size]
		if capacity := n * size; need[name] > capacity {
			why := fmt.Sprintf("the host has %d pages of that size reserved (%s/hugepages-%dkB/nr_hugepages)", n, hugepagesDir, size>>10)
			if !has {
				why = "the host has no hugepages of that size"
			}
			return false, "OutOf" + string(name), fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, capacity: %d; %s", name, need[name], capacity, why)
		}
	}
	return true, "", ""
}
