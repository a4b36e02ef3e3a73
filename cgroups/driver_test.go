package cgroups

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// A fake tree is a directory laid out as the kernel mounts cgroups. Unlike
// the kernel's, a fake cgroup directory that holds a file cannot be
// removed: such a file stands for a process still in the cgroup.

func fakeV1(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, h := range []string{"cpu,cpuacct", "memory", "pids", "unified"} {
		mkdir(t, filepath.Join(root, h))
	}
	return root
}

func fakeV2(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write(t, filepath.Join(root, "cgroup.controllers"), "cpu memory pids\n")
	return root
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, file, data string) {
	t.Helper()
	mkdir(t, filepath.Dir(file))
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

var burstable = Pod{Hash: "0123456789ab", Class: v1.PodQOSBurstable}

func TestUnified(t *testing.T) {
	if Unified(fakeV1(t)) {
		t.Error("a hybrid v1 tree (empty unified mount) taken for cgroup v2")
	}
	if !Unified(fakeV2(t)) {
		t.Error("a unified tree not recognised")
	}
}

func TestNewRefusesUnknownDriver(t *testing.T) {
	if _, err := New("cgroupfs2", t.TempDir(), "/podsup"); err == nil {
		t.Fatal("an unknown driver accepted")
	}
}

// layout is one driver on one kind of tree: where a container's cgroup is
// in every hierarchy, and the file its OOM kills are counted in.
type layout struct {
	name   string
	driver func(t *testing.T, root string) Driver
	tree   func(t *testing.T) string
	// path is the OCI cgroupsPath of container "c1" of the burstable pod.
	path string
	// dirs are the container's cgroup directories, relative to the root.
	dirs []string
	// oomFile is where the OOM kill count is, relative to the root.
	oomFile, oomData string
}

var stops []string

func layouts() []layout {
	cgroupfs := func(t *testing.T, root string) Driver {
		d, err := New(CgroupFS, root, "/podsup")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	sd := func(t *testing.T, root string) Driver {
		return newSystemd(tree{root: root, unified: Unified(root)}, "/podsup", func(_ context.Context, unit string) error {
			stops = append(stops, unit)
			return nil
		})
	}
	const scope = "podsup.slice/podsup-burstable.slice/podsup-burstable-pod0123456789ab.slice/podsup-c1.scope"
	return []layout{
		{"cgroupfs on v1", cgroupfs, fakeV1, "/podsup/burstable/pod0123456789ab/c1",
			[]string{"cpu,cpuacct/podsup/burstable/pod0123456789ab/c1", "memory/podsup/burstable/pod0123456789ab/c1", "pids/podsup/burstable/pod0123456789ab/c1"},
			"memory/podsup/burstable/pod0123456789ab/c1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"},
		{"cgroupfs on v2", cgroupfs, fakeV2, "/podsup/burstable/pod0123456789ab/c1",
			[]string{"podsup/burstable/pod0123456789ab/c1"},
			"podsup/burstable/pod0123456789ab/c1/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"},
		{"systemd on v1", sd, fakeV1, "podsup-burstable-pod0123456789ab.slice:podsup:c1",
			[]string{"memory/" + scope, "pids/" + scope},
			"memory/" + scope + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"},
		{"systemd on v2", sd, fakeV2, "podsup-burstable-pod0123456789ab.slice:podsup:c1",
			[]string{scope},
			scope + "/memory.events", "oom 1\noom_kill 1\n"},
	}
}

func TestContainerPath(t *testing.T) {
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			if got := l.driver(t, l.tree(t)).ContainerPath(burstable, "c1"); got != l.path {
				t.Errorf("cgroupsPath %q, want %q", got, l.path)
			}
		})
	}
}

func TestOOMKilled(t *testing.T) {
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			root := l.tree(t)
			d := l.driver(t, root)
			if d.OOMKilled(l.path) {
				t.Error("OOM kill reported for a cgroup that does not exist")
			}
			write(t, filepath.Join(root, l.oomFile), "oom_kill 0\n")
			if d.OOMKilled(l.path) {
				t.Error("OOM kill reported with a count of 0")
			}
			write(t, filepath.Join(root, l.oomFile), l.oomData)
			if !d.OOMKilled(l.path) {
				t.Errorf("OOM kill not seen in %s", l.oomFile)
			}
			if d.OOMKilled("other:prefix:c1") || d.OOMKilled("/elsewhere/c1") {
				t.Error("OOM kill reported for a cgroupsPath of another driver or parent")
			}
		})
	}
}

func TestRemoveContainer(t *testing.T) {
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			root := l.tree(t)
			d := l.driver(t, root)
			for _, dir := range l.dirs {
				mkdir(t, filepath.Join(root, dir, "leftover-child"))
			}
			if err := d.RemoveContainer(context.Background(), l.path); err != nil {
				t.Fatal(err)
			}
			for _, dir := range l.dirs {
				if exists(filepath.Join(root, dir)) {
					t.Errorf("%s still there", dir)
				}
				if !exists(filepath.Join(root, filepath.Dir(dir))) {
					t.Errorf("the pod's cgroup above %s went with the container's", dir)
				}
			}
			if err := d.RemoveContainer(context.Background(), l.path); err != nil {
				t.Errorf("removing it again: %v, want success", err)
			}
		})
	}
}

func TestRemovePod(t *testing.T) {
	for _, l := range layouts() {
		t.Run(l.name, func(t *testing.T) {
			root := l.tree(t)
			d := l.driver(t, root)
			stops = nil
			for _, dir := range l.dirs {
				mkdir(t, filepath.Join(root, dir))
			}
			// A process still in the pod's sandbox cgroup: the pod's
			// cgroup stays, with the error; once it is gone, removal works.
			busy := filepath.Join(root, filepath.Dir(l.dirs[0]), "sandbox", "cgroup.procs")
			write(t, busy, "1234\n")
			if err := d.RemovePod(context.Background(), burstable.Hash); err == nil {
				t.Fatal("RemovePod succeeded with a process in the pod's cgroup")
			}
			if err := os.Remove(busy); err != nil {
				t.Fatal(err)
			}
			if err := d.RemovePod(context.Background(), burstable.Hash); err != nil {
				t.Fatal(err)
			}
			for _, dir := range l.dirs {
				if pod := filepath.Dir(dir); exists(filepath.Join(root, pod)) {
					t.Errorf("pod cgroup %s still there", pod)
				}
				if class := filepath.Dir(filepath.Dir(dir)); !exists(filepath.Join(root, class)) {
					t.Errorf("the QoS class's cgroup %s went with the pod's", class)
				}
			}
			if d.Name() == Systemd && !slices.Contains(stops, "podsup-burstable-pod0123456789ab.slice") {
				t.Errorf("systemd units stopped: %v, want the pod's slice", stops)
			}
		})
	}
}

func TestSystemdPrefix(t *testing.T) {
	d := newSystemd(tree{root: fakeV2(t), unified: true}, "/pod-sup", func(context.Context, string) error { return errors.New("unused") })
	if got := d.ContainerPath(burstable, "c1"); got != "pod_sup-burstable-pod0123456789ab.slice:pod_sup:c1" {
		t.Errorf("cgroupsPath %q: a - in the parent must not split the slice", got)
	}
}
