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

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/oci"
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

// zombieChildren counts the zombie children of pid, seen from the host.
func zombieChildren(t *testing.T, pid int) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		s := string(data)
		if strings.Contains(s, fmt.Sprintf("\nPPid:\t%d\n", pid)) && strings.Contains(s, "\nState:\tZ") {
			n++
			t.Logf("zombie %d", child)
		}
	}
	return n
}

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

	// A container in pause's PID namespace orphans a short-lived process,
	// which is reparented to pause, PID 1 of the namespace.
	bb := testenv.ImportBusybox(t, ctx, client)
	app, err := client.NewContainer(ctx, "app", containerd.WithNewSnapshot("app", bb),
		containerd.WithNewSpec(oci.WithImageConfig(bb), oci.WithProcessArgs("sh", "-c", "(sleep 0.2 &); sleep 30"),
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
	time.Sleep(time.Second)
	if z := zombieChildren(t, pid); z != 0 {
		t.Errorf("pause left %d zombies", z)
	}
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
	case <-time.After(10 * time.Second):
		t.Fatal("pause ignored SIGTERM")
	}
}
