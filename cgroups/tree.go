package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// tree is a mounted cgroup tree: one unified hierarchy, or one per v1
// controller.
type tree struct {
	root    string
	unified bool
}

// dirs is where the cgroup rel is in every hierarchy: under the root of a
// unified tree, or under each v1 controller (and under "unified", where v2
// is mounted beside v1).
func (t tree) dirs(rel string) []string {
	if t.unified {
		return []string{filepath.Join(t.root, rel)}
	}
	hierarchies, err := os.ReadDir(t.root)
	if err != nil {
		return nil
	}
	var dirs []string
	for _, h := range hierarchies {
		if h.IsDir() {
			dirs = append(dirs, filepath.Join(t.root, h.Name(), rel))
		}
	}
	return dirs
}

// oomKilled reads the OOM kill count of the cgroup rel: memory.events on
// v2, memory.oom_control in v1's memory hierarchy.
func (t tree) oomKilled(rel string) bool {
	file := filepath.Join(t.root, "memory", rel, "memory.oom_control")
	if t.unified {
		file = filepath.Join(t.root, rel, "memory.events")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n > 0
		}
	}
	return false
}

// remove removes the cgroup rel from every hierarchy.
func (t tree) remove(rel string) error {
	var errs []error
	for _, d := range t.dirs(rel) {
		if err := removeTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killAll sends SIGKILL to every process in the cgroup rel and the
// cgroups under it, in every hierarchy.
func (t tree) killAll(rel string) {
	for _, d := range t.dirs(rel) {
		_ = filepath.WalkDir(d, func(path string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// removeTree removes a cgroup and the cgroups under it, deepest first.
// Only empty cgroups can go: one with a process in it stays, and so does
// every cgroup above it, with EBUSY in the error.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// exists reports whether the cgroup rel is in some hierarchy.
func (t tree) exists(rel string) bool {
	for _, dir := range t.dirs(rel) {
		if isDir(dir) {
			return true
		}
	}
	return false
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
