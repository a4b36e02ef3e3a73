//go:build integration

package image_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/internal/testenv"
)

// procStatus reads one field of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// children lists the children of pid, zombies included, seen from the host.
func children(t *testing.T, pid int) []int {
	t.Helper()
	var all []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		if strings.Contains(string(data), fmt.Sprintf("\nPPid:\t%d\n", pid)) {
			all = append(all, child)
		}
	}
	return all
}

// handles reports whether a signal mask of /proc/PID/status (SigCgt,
// SigIgn) holds sig.
func handles(mask string, sig syscall.Signal) bool {
	bits, err := strconv.ParseUint(mask, 16, 64)
	return err == nil && bits&(1<<(uint(sig)-1)) != 0
}

// waitProc waits for what processes and pulls do on their own: far longer
// than it takes on a loaded machine, so it fails only when it never
// happens.
func waitProc(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute", what)
		}
	}
}

// TestPauseContainer: pause, PID 1 of a pod's PID namespace, leaves no
// zombie of what it inherits, stays small, and exits 0 on SIGTERM.
func TestPauseContainer(t *testing.T) {
	client := testenv.Client(t)
	ctx, _ := testenv.Namespace(t, client)
	b, err := image.PauseImage()
	if err != nil {
		t.Skip(err)
	}
	pauseImg, err := b.Import(ctx, client, testenv.Snapshotter)
	if err != nil {
		t.Fatal(err)
	}
	pause, err := client.NewContainer(ctx, "pause", containerd.WithNewSnapshot("pause", pauseImg),
		containerd.WithNewSpec(oci.WithImageConfig(pauseImg)))
	if err != nil {
		t.Fatal(err)
	}
	ptask, err := pause.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	pexit, err := ptask.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ptask.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := int(ptask.Pid())
	// Its first instructions ignore SIGCHLD and catch SIGTERM.
	waitProc(t, "pause's signal handling", func() bool {
		return handles(procStatus(t, pid, "SigIgn"), syscall.SIGCHLD) && handles(procStatus(t, pid, "SigCgt"), syscall.SIGTERM)
	})

	// A container in pause's PID namespace orphans a process, which is
	// reparented to pause, PID 1 of the namespace.
	bb := testenv.ImportBusybox(t, ctx, client)
	app, err := client.NewContainer(ctx, "app", containerd.WithNewSnapshot("app", bb),
		containerd.WithNewSpec(oci.WithImageConfig(bb), oci.WithProcessArgs("sh", "-c", "(sleep 1000 &); sleep 1000"),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", pid)})))
	if err != nil {
		t.Fatal(err)
	}
	atask, err := app.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := atask.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var orphans []int
	waitProc(t, "an orphan reparented to pause", func() bool { orphans = children(t, pid); return len(orphans) > 0 })
	// When it dies, nothing of it may stay: a zombie stays until its
	// parent reaps it.
	for _, o := range orphans {
		if err := syscall.Kill(o, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitProc(t, "the orphan reaped, no zombie left", func() bool {
		return len(children(t, pid)) == 0
	})
	rss := procStatus(t, pid, "VmRSS")
	kb, _ := strconv.Atoi(strings.Fields(rss)[0])
	t.Logf("pause in a container: VmRSS %d KiB", kb)
	if kb >= 1024 {
		t.Errorf("pause RSS %d KiB, want under 1 MiB", kb)
	}
	atask.Kill(ctx, syscall.SIGKILL)

	if err := ptask.Kill(ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-pexit:
		if st.ExitCode() != 0 {
			t.Errorf("pause exited %d on SIGTERM, want 0", st.ExitCode())
		}
	case <-time.After(time.Minute):
		t.Fatal("pause ignored SIGTERM")
	}
}
