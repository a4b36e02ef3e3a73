//go:build integration

package cgroups

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/internal/testenv"
)

// realV1 is the cgroupfs driver on this host's cgroup v1 tree, under a
// parent of the test's own, removed at the end.
func realV1(t *testing.T) (Driver, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "cgroups need root")
	}
	if Unified(Root) {
		testenv.Unavailable(t, "this host has cgroup v2: the v1 test does not apply")
	}
	parent := "/podsup-test-" + filepath.Base(t.TempDir())
	d, err := New(CgroupFS, Root, parent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, h := range []string{"memory", "pids", "cpu,cpuacct"} {
			removeTree(filepath.Join(Root, h, parent))
		}
	})
	return d, parent
}

// runIn starts a shell that joins the cgroup rel in the memory and pids
// hierarchies, then runs script; its output is read from the pipe it
// returns.
func runIn(t *testing.T, rel, script string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	var join []string
	for _, h := range []string{"memory", "pids"} {
		dir := filepath.Join(Root, h, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			testenv.Unavailable(t, "cgroup v1 hierarchy %s: %v", h, err)
		}
		join = append(join, fmt.Sprintf("echo $$ > %s/cgroup.procs", dir))
	}
	cmd := exec.Command("sh", "-c", strings.Join(join, " && ")+" && "+script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(out)
}

// TestOOMKilledOnV1: a process over its container's memory limit is
// killed by the kernel, and the driver sees it in the cgroup.
func TestOOMKilledOnV1(t *testing.T) {
	d, _ := realV1(t)
	pod := Pod{Hash: "0123456789ab", Class: v1.PodQOSBurstable}
	path := d.ContainerPath(pod, "c1")
	mem := filepath.Join(Root, "memory", path)
	if err := os.MkdirAll(mem, 0o755); err != nil {
		testenv.Unavailable(t, "memory hierarchy: %v", err)
	}
	for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
		if err := os.WriteFile(filepath.Join(mem, f), []byte("16777216"), 0o644); err != nil && f == "memory.limit_in_bytes" {
			t.Fatal(err)
		}
	}
	if d.OOMKilled(path) {
		t.Fatal("OOM kill reported before anything ran")
	}
	// dd's buffer is 64 MiB, four times the limit.
	dd, _ := runIn(t, path, "exec dd if=/dev/zero of=/dev/null bs=64M count=1")
	err := dd.Wait()
	if err == nil {
		t.Fatal("a process four times over its memory limit completed")
	}
	if !d.OOMKilled(path) {
		t.Errorf("the OOM kill (%v) not seen in %s", err, mem)
	}
	if err := d.RemoveContainer(context.Background(), path); err != nil {
		t.Errorf("remove the container's cgroup once its process is gone: %v", err)
	}
}

// TestRemovePodOnV1: a pod cgroup with a process in it stays, with the
// error; once the process is gone it goes with the empty container cgroups
// under it, from every hierarchy, and the QoS class's cgroup stays.
func TestRemovePodOnV1(t *testing.T) {
	d, parent := realV1(t)
	pod := Pod{Hash: "ba9876543210", Class: v1.PodQOSBestEffort}
	for _, h := range []string{"memory", "pids", "cpu,cpuacct"} {
		if err := os.MkdirAll(filepath.Join(Root, h, d.ContainerPath(pod, "left-by-a-cut-short-create")), 0o755); err != nil {
			testenv.Unavailable(t, "cgroup v1 hierarchy %s: %v", h, err)
		}
	}
	sandbox := d.ContainerPath(pod, "sandbox")
	sleeper, out := runIn(t, sandbox, "echo joined && exec sleep 600")
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	// The shell says so once it is in the cgroups, or exits without a word.
	if line, err := out.ReadString('\n'); line != "joined\n" {
		t.Fatalf("the process never joined the sandbox's cgroup: %q, %v", line, err)
	}
	if err := d.RemovePod(context.Background(), pod.Hash); err == nil {
		t.Fatal("the pod's cgroup removed with a process in it")
	}
	sleeper.Process.Kill()
	sleeper.Wait()
	if err := d.RemovePod(context.Background(), pod.Hash); err != nil {
		t.Fatalf("remove the pod's cgroup once its process is gone: %v", err)
	}
	for _, h := range []string{"memory", "pids", "cpu,cpuacct"} {
		podDir := filepath.Join(Root, h, filepath.Dir(sandbox))
		if _, err := os.Stat(podDir); err == nil {
			t.Errorf("%s still there", podDir)
		}
		if _, err := os.Stat(filepath.Join(Root, h, parent, "besteffort")); err != nil {
			t.Errorf("the QoS class's cgroup in %s went with the pod: %v", h, err)
		}
	}
}

// TestRemoveContainerKillsLostProcessesOnV1: a process left in a
// container's cgroup after its task is gone (one its shim lost) is killed,
// and the cgroup goes; a pod's cgroup is not a container's and keeps its
// processes (TestRemovePodOnV1).
func TestRemoveContainerKillsLostProcessesOnV1(t *testing.T) {
	d, _ := realV1(t)
	pod := Pod{Hash: "0a1b2c3d4e5f", Class: v1.PodQOSBestEffort}
	path := d.ContainerPath(pod, "lost")
	sleeper, out := runIn(t, path, "echo joined && exec sleep 600")
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	if line, err := out.ReadString('\n'); line != "joined\n" {
		t.Fatalf("the process never joined the container's cgroup: %q, %v", line, err)
	}
	if err := d.RemoveContainer(context.Background(), path); err != nil {
		t.Fatalf("remove a container's cgroup with a lost process in it: %v", err)
	}
	if err := sleeper.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the lost process ended with %v, want killed", err)
	}
	for _, h := range []string{"memory", "pids"} {
		if _, err := os.Stat(filepath.Join(Root, h, path)); err == nil {
			t.Errorf("%s still there in %s", path, h)
		}
	}
}
