package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func read(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestSetPodLimits(t *testing.T) {
	limits := PodLimits{MemoryBytes: 64 << 20, CPUQuotaUsecs: 50000, CPUPeriodUsecs: 100000, CPUShares: 512}
	t.Run("cgroupfs on v1", func(t *testing.T) {
		root := fakeV1(t)
		d, _ := New(CgroupFS, root, "/podsup")
		if err := d.SetPodLimits(burstable, limits); err != nil {
			t.Fatal(err)
		}
		pod := "podsup/burstable/pod" + burstable.Hash
		for file, want := range map[string]string{
			"memory/" + pod + "/memory.limit_in_bytes":  "67108864",
			"cpu,cpuacct/" + pod + "/cpu.shares":        "512",
			"cpu,cpuacct/" + pod + "/cpu.cfs_quota_us":  "50000",
			"cpu,cpuacct/" + pod + "/cpu.cfs_period_us": "100000",
		} {
			if got := read(t, filepath.Join(root, file)); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
	})
	t.Run("cgroupfs on v2", func(t *testing.T) {
		root := fakeV2(t)
		d, _ := New(CgroupFS, root, "/podsup")
		if err := d.SetPodLimits(burstable, limits); err != nil {
			t.Fatal(err)
		}
		pod := "podsup/burstable/pod" + burstable.Hash
		for file, want := range map[string]string{
			pod + "/memory.max":                       "67108864",
			pod + "/cpu.max":                          "50000 100000",
			pod + "/cpu.weight":                       "20",
			"cgroup.subtree_control":                  "+cpu +memory",
			"podsup/burstable/cgroup.subtree_control": "+cpu +memory",
			"podsup/cgroup.subtree_control":           "+cpu +memory",
		} {
			if got := read(t, filepath.Join(root, file)); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
	})
	t.Run("only what is set", func(t *testing.T) {
		root := fakeV1(t)
		d, _ := New(CgroupFS, root, "/podsup")
		if err := d.SetPodLimits(burstable, PodLimits{MemoryBytes: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		if exists(filepath.Join(root, "cpu,cpuacct/podsup/burstable/pod"+burstable.Hash, "cpu.cfs_quota_us")) {
			t.Error("a CPU quota was written without a CPU limit")
		}
	})
	t.Run("systemd refuses", func(t *testing.T) {
		d := newSystemd(tree{root: fakeV1(t)}, "/podsup", nil)
		if err := d.SetPodLimits(burstable, limits); !errors.Is(err, ErrPodLimits) || !strings.Contains(err.Error(), "systemd") {
			t.Errorf("got %v, want ErrPodLimits naming the systemd driver", err)
		}
	})
}

func TestSharesToWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 1, 2: 1, 1024: 39, 262144: 10000, 1 << 20: 10000} {
		if got := sharesToWeight(shares); got != want {
			t.Errorf("sharesToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
}

// TestHasController: a controller is usable when a unified hierarchy
// enables it or a v1 hierarchy holds it, not on a hybrid host that binds
// it to neither.
func TestHasController(t *testing.T) {
	v2 := fakeV2(t)
	write(t, filepath.Join(v2, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids\n")
	v1 := fakeV1(t)
	mkdir(t, filepath.Join(v1, "hugetlb"))
	hybrid := fakeV1(t)
	if !HasController(v2, "hugetlb") || !HasController(v1, "hugetlb") || HasController(hybrid, "hugetlb") {
		t.Errorf("v2 %v, v1 %v, hybrid without hugetlb %v; want true, true, false",
			HasController(v2, "hugetlb"), HasController(v1, "hugetlb"), HasController(hybrid, "hugetlb"))
	}
	if !HasController(hybrid, "cpu") {
		t.Error("cpu, mounted with cpuacct, not found")
	}
}
