//go:build integration

package runtime

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/internal/testenv"
)

// TestRemovePodCgroupsWithLeftovers: a pod cgroup with an empty container
// cgroup left under it, as a task create cut short leaves it, is removed
// with it from every hierarchy, on the real cgroup filesystem.
func TestRemovePodCgroupsWithLeftovers(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "cgroups need root")
	}
	r := &Runtime{cgroupParent: "/podsup-test-" + filepath.Base(t.TempDir())}
	const key = "default/leftover"
	pod := r.podCgroup(key, v1.PodQOSBestEffort)
	var made []string
	for _, h := range []string{"memory", "pids", "cpu,cpuacct"} {
		dir := filepath.Join(cgroupRoot, h, pod, PodHash(key)+"_pause.0")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			testenv.Unavailable(t, "cgroup v1 hierarchy %s: %v", h, err)
		}
		made = append(made, filepath.Join(cgroupRoot, h, r.cgroupParent))
	}
	t.Cleanup(func() {
		for _, d := range made {
			removeCgroupTree(d)
		}
	})

	if err := r.removePodCgroups(key); err != nil {
		t.Fatalf("remove a pod cgroup with an empty container cgroup under it: %v", err)
	}
	for _, d := range made {
		if _, err := os.Stat(filepath.Join(filepath.Dir(d), pod)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there (stat: %v)", filepath.Join(filepath.Dir(d), pod), err)
		}
	}
}
