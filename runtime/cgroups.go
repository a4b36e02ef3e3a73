package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// podCgroup is the cgroup of a pod under the parent, by QoS class as the
// kubelet arranges them: /podsup/burstable/pod<hash>.
func (r *Runtime) podCgroup(key string, class v1.PodQOSClass) string {
	return filepath.Join(r.cgroupParent, strings.ToLower(string(class)), "pod"+PodHash(key))
}

// cgroupsPath is the OCI cgroupsPath of one container. With the systemd
// driver it takes systemd's "slice:prefix:name" form; the slice name encodes
// the same hierarchy.
func (r *Runtime) cgroupsPath(key string, class v1.PodQOSClass, id string) string {
	if r.cgroupDriver == "systemd" {
		ns := strings.ReplaceAll(strings.TrimPrefix(r.cgroupParent, "/"), "-", "_")
		slice := fmt.Sprintf("%s-%s-pod%s.slice", ns, strings.ToLower(string(class)), PodHash(key))
		return slice + ":" + ns + ":" + id
	}
	return filepath.Join(r.podCgroup(key, class), id)
}

// oomKilled reports whether the OOM killer struck in a container's cgroup,
// which stays until the task is deleted. It reads cgroup v1's
// memory.oom_control and cgroup v2's memory.events.
func oomKilled(cgroupsPath string) bool {
	if cgroupsPath == "" || strings.Contains(cgroupsPath, ":") {
		return false
	}
	for _, f := range []string{
		filepath.Join(cgroupRoot, "memory", cgroupsPath, "memory.oom_control"),
		filepath.Join(cgroupRoot, cgroupsPath, "memory.events"),
	} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n > 0
			}
		}
	}
	return false
}

// removePodCgroups removes a pod's cgroup from every hierarchy once its
// containers are gone, with the empty container cgroups left under it:
// runc removes a container's own cgroup when its task is deleted, but not
// one a create cut short made (seen with containerd 2.3 when podsup was
// killed while it created a task).
func (r *Runtime) removePodCgroups(key string) error {
	if r.cgroupDriver == "systemd" {
		return nil // systemd removes empty slices itself
	}
	hierarchies, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil
	}
	var errs []error
	for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		rel := r.podCgroup(key, class)
		for _, h := range hierarchies {
			dirs := []string{filepath.Join(cgroupRoot, h.Name(), rel)}
			if h.Name() == "unified" || !h.IsDir() {
				dirs = append(dirs, filepath.Join(cgroupRoot, rel))
			}
			for _, d := range dirs {
				if err := removeCgroupTree(d); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// removeCgroupTree removes a cgroup and the cgroups under it, deepest
// first. Only empty cgroups can go: one with a process in it stays, and so
// does every cgroup above it, with EBUSY in the error.
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
