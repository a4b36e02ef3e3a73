//go:build integration

package runtime_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/runtime"
)

// TestStartOverLeftoverTask: a task whose container record is gone, as an
// interrupted create leaves it when containerd stops in the middle, has the
// ID of the container podsup starts next. The start removes it and
// succeeds, instead of failing with "already exists" at every restart.
func TestStartOverLeftoverTask(t *testing.T) {
	client, ctx, rt, pod, sb := leftoverSetup(t)
	id := runtime.ContainerID(pod.Namespace+"/"+pod.Name, "polite", sb.Attempt, 0, 0)
	leaveTask(t, ctx, client, id)

	c := &pod.Spec.Containers[1]
	started, err := rt.StartContainer(ctx, &runtime.ContainerConfig{Pod: pod, Container: c, Sandbox: sb, Hash: "test"})
	if err != nil {
		t.Fatalf("start over a leftover task: %v", err)
	}
	if started.ID != id {
		t.Fatalf("started %s, want the leftover's ID %s", started.ID, id)
	}
	waitLog(t, started.LogPath, "ready")
}

// TestOrphanTasksSwept: a leftover task of an ID podsup will not use again
// (a retry after a failed create has an ID of its own) is removed by the
// sweep of orphans, and the sandbox's task, whose container exists, stays.
func TestOrphanTasksSwept(t *testing.T) {
	client, ctx, rt, pod, sb := leftoverSetup(t)
	id := runtime.ContainerID(pod.Namespace+"/"+pod.Name, "polite", sb.Attempt, 3, 1)
	pid := leaveTask(t, ctx, client, id)

	if err := rt.RemoveOrphans(ctx, "", 0); err != nil {
		t.Fatal(err)
	}
	// Its process is what a leftover task holds: the sweep killed it and
	// the shim reaped it. (containerd answers NotFound for a task whose
	// container record is gone, whether or not the task is there.)
	if err := syscall.Kill(int(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the leftover task's process %d is still there after the sweep (kill 0: %v)", pid, err)
	}
	if err := syscall.Kill(int(sb.Pid), 0); err != nil {
		t.Errorf("the sandbox's process %d went with the sweep: %v", sb.Pid, err)
	}
}

// leftoverSetup makes a runtime on the test's own namespace and runs the
// sandbox of a two-container pod.
func leftoverSetup(t *testing.T) (*containerd.Client, context.Context, *runtime.Runtime, *v1.Pod, *runtime.Sandbox) {
	t.Helper()
	client := testenv.Client(t)
	ctx, ns := testenv.Namespace(t, client)
	testenv.ImportBusybox(t, ctx, client)
	rt, err := runtime.New(testenv.Address(), runtime.WithNamespace(ns), runtime.WithRootDir(t.TempDir()), runtime.WithLogDir(t.TempDir()),
		runtime.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dirs, _ := rt.PodDirs()
		for dir := range dirs {
			rt.RemovePodDir(dir)
		}
		rt.Close()
	})
	objs, err := manifest.Parse("left.yaml", []byte(stopPod), manifest.Static{NodeName: "node1", Source: manifest.SourceFile})
	if err != nil {
		t.Fatal(err)
	}
	pod := objs.Pods[0]
	sb, err := rt.RunSandbox(ctx, pod, runtime.SandboxConfig{Hash: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return client, ctx, rt, pod, sb
}

// leaveTask makes what an interrupted create leaves: a created task of the
// given ID whose container record was deleted under it. It returns the
// task's PID.
func leaveTask(t *testing.T, ctx context.Context, client *containerd.Client, id string) uint32 {
	t.Helper()
	img, err := client.GetImage(ctx, testenv.BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	stray, err := client.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000")))
	if err != nil {
		t.Fatal(err)
	}
	task, err := stray.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.ContainerService().Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := client.SnapshotService(testenv.Snapshotter).Remove(ctx, id); err != nil {
		t.Logf("remove the stray's snapshot: %v", err) // still mounted by its task on some versions
	}
	return task.Pid()
}

// TestRemoveContainerTakesItsCgroup: a container whose task is gone but
// whose cgroup stayed, as containerd 2.3 leaves a task create cut short,
// loses its cgroup in every hierarchy when podsup removes it, and the pod's
// cgroup above it stays.
func TestRemoveContainerTakesItsCgroup(t *testing.T) {
	client, ctx, rt, pod, sb := leftoverSetup(t)
	id := runtime.ContainerID(pod.Namespace+"/"+pod.Name, "polite", sb.Attempt, 0, 0)
	cgroup, dirs := makeContainerCgroup(t, ctx, client, sb, id, "memory", "pids", "cpu")
	if _, err := client.NewContainer(ctx, id, containerd.WithContainerLabels(map[string]string{runtime.LabelCgroupsPath: cgroup})); err != nil {
		t.Fatal(err)
	}

	if err := rt.RemoveContainer(ctx, &runtime.Container{ID: id}); err != nil {
		t.Fatalf("remove a container whose cgroup outlived its task: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there (stat: %v)", d, err)
		}
		if _, err := os.Stat(filepath.Dir(d)); err != nil {
			t.Errorf("the pod's cgroup went with the container's: %v", err)
		}
	}
	if _, err := client.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("the container record is still there (load: %v)", err)
	}
}

// makeContainerCgroup makes the cgroup the container of the given ID in
// the sandbox's pod would have, in the named v1 hierarchies, as a task
// create cut short leaves it. It returns the cgroup's path under each
// hierarchy and its directories.
func makeContainerCgroup(t *testing.T, ctx context.Context, client *containerd.Client, sb *runtime.Sandbox, id string, hierarchies ...string) (string, []string) {
	t.Helper()
	sbc, err := client.LoadContainer(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := sbc.Labels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cgroup := filepath.Join(filepath.Dir(labels[runtime.LabelCgroupsPath]), id)
	var dirs []string
	for _, h := range hierarchies {
		dir := filepath.Join("/sys/fs/cgroup", h, cgroup)
		if err := os.Mkdir(dir, 0o755); err != nil {
			testenv.Unavailable(t, "cgroup v1 hierarchy %s: %v", h, err)
		}
		dirs = append(dirs, dir)
	}
	return cgroup, dirs
}

// TestStartPassesOverLeftovers: a container record left by a start that was
// cut short keeps its ID, and the next start takes the next retry's
// (containerd 2.3's cleanup of the old task's shim would delete a new task
// of the same ID); a snapshot left alone, with no container, is removed
// and its ID used.
func TestStartPassesOverLeftovers(t *testing.T) {
	client, ctx, rt, pod, sb := leftoverSetup(t)
	key := pod.Namespace + "/" + pod.Name
	img, err := client.GetImage(ctx, testenv.BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	leave := func(id string, keepRecord bool) {
		t.Helper()
		if _, err := client.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id, img),
			containerd.WithNewSpec(oci.WithImageConfig(img))); err != nil {
			t.Fatal(err)
		}
		if !keepRecord {
			if err := client.ContainerService().Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	recordID := runtime.ContainerID(key, "polite", sb.Attempt, 0, 0)
	leave(recordID, true)
	started, err := rt.StartContainer(ctx, &runtime.ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[1], Sandbox: sb, Hash: "test"})
	if err != nil {
		t.Fatalf("start beside a leftover container: %v", err)
	}
	if want := runtime.ContainerID(key, "polite", sb.Attempt, 0, 1); started.ID != want {
		t.Errorf("started %s beside the leftover %s, want %s", started.ID, recordID, want)
	}
	if _, err := client.LoadContainer(ctx, recordID); err != nil {
		t.Errorf("the leftover container went before its replacement was up to remove it: %v", err)
	}

	snapshotID := runtime.ContainerID(key, "polite", sb.Attempt, 1, 0)
	leave(snapshotID, false)
	started, err = rt.StartContainer(ctx, &runtime.ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[1], Sandbox: sb, Hash: "test", Attempt: 1})
	if err != nil {
		t.Fatalf("start over a leftover snapshot: %v", err)
	}
	if started.ID != snapshotID {
		t.Errorf("started %s over a leftover snapshot, want its ID %s", started.ID, snapshotID)
	}
	waitLog(t, started.LogPath, "ready")
}

// TestFailedStartTakesItsCgroup: a start whose task create fails leaves
// neither its container record nor its cgroup, even with a process in the
// cgroup that no task owns (a `runc init` its shim lost under load leaves
// one): the process is killed and the cgroup goes, from every hierarchy.
// Before, the cgroup and its process stayed, and held the pod's cgroup.
func TestFailedStartTakesItsCgroup(t *testing.T) {
	client, ctx, rt, pod, sb := leftoverSetup(t)
	id := runtime.ContainerID(pod.Namespace+"/"+pod.Name, "polite", sb.Attempt, 0, 0)
	_, dirs := makeContainerCgroup(t, ctx, client, sb, id, "memory", "pids")
	var join []string
	for _, dir := range dirs {
		join = append(join, "echo $$ > "+filepath.Join(dir, "cgroup.procs"))
	}
	lost := exec.Command("sh", "-c", strings.Join(join, " && ")+" && echo joined && exec sleep 600")
	out, err := lost.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lost.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- lost.Wait() }()
	t.Cleanup(func() { lost.Process.Kill() })
	// The shell says so once it is in the cgroups, or exits without a word.
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "joined\n" {
		t.Fatalf("the lost process never joined the container's cgroup: %q, %v", line, err)
	}

	c := pod.Spec.Containers[1]
	c.Command = []string{"/no/such/command"}
	if _, err := rt.StartContainer(ctx, &runtime.ContainerConfig{Pod: pod, Container: &c, Sandbox: sb, Hash: "test"}); !errors.Is(err, runtime.ErrCreate) {
		t.Fatalf("start of a command that does not exist: %v, want ErrCreate", err)
	}
	// The start returned once the cgroup was empty, so the process has
	// ended if it was killed; the wait is for its reaping, on a busy machine.
	var waitErr error
	if _, ok := testenv.Poll(testenv.StartLimit, func() bool {
		select {
		case waitErr = <-ended:
			return true
		default:
			return false
		}
	}); !ok {
		t.Errorf("the process in the failed container's cgroup is still alive %s after the start failed", testenv.StartLimit)
	} else if waitErr == nil || !strings.Contains(waitErr.Error(), "killed") {
		t.Errorf("the process in the failed container's cgroup ended with %v, want killed", waitErr)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there (stat: %v)", d, err)
		}
	}
	if _, err := client.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("the failed container's record is still there (load: %v)", err)
	}
}
