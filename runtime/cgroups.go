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
// containers are gone, with the empty container cgroups left under it.
func (r *Runtime) removePodCgroups(key string) error {
	if r.cgroupDriver == "systemd" {
		return nil // systemd removes empty slices itself
	}
	var errs []error
	for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		for _, d := range hierarchyDirs(r.podCgroup(key, class)) {
			if err := removeCgroupTree(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeContainerCgroup removes a container's own cgroup, given by its OCI
// cgroupsPath, from every hierarchy once its task is gone. runc removes it
// when the task is deleted, but not one a create cut short made: containerd
// 2.3 deletes such a task with "container not created" and leaves the
// cgroup (seen when podsup was killed while it created a task). With the
// systemd driver systemd removes the scope.
func removeContainerCgroup(cgroupsPath string) error {
	if cgroupsPath == "" || strings.Contains(cgroupsPath, ":") {
		return nil
	}
	var errs []error
	for _, d := range hierarchyDirs(cgroupsPath) {
		if err := removeCgroupTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hierarchyDirs is where the cgroup rel is in every mounted hierarchy: rel
// under the root of a cgroup v2 mount, or under each cgroup v1 controller
// (and under "unified", where v2 is mounted beside v1).
func hierarchyDirs(rel string) []string {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return []string{filepath.Join(cgroupRoot, rel)}
	}
	hierarchies, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil
	}
	var dirs []string
	for _, h := range hierarchies {
		if h.IsDir() {
			dirs = append(dirs, filepath.Join(cgroupRoot, h.Name(), rel))
		}
	}
	return dirs
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
