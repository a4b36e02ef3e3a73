//go:build integration

package testenv

import (
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// TestHarnessRunsAContainer proves the harness: the offline busybox image
// imports into a fresh namespace and a container from it runs on the real
// containerd and runc, and the namespace is emptied afterwards.
func TestHarnessRunsAContainer(t *testing.T) {
	client := Client(t)
	ctx, _ := Namespace(t, client)
	img := ImportBusybox(t, ctx, client)
	c, err := client.NewContainer(ctx, "harness", containerd.WithNewSnapshot("harness", img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sh", "-c", "echo hello from $(uname -s); id -u")))
	if err != nil {
		t.Fatal(err)
	}
	var out SyncBuffer // stdout and stderr are copied by two goroutines
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out)))
	if err != nil {
		t.Fatal(err)
	}
	exit, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-exit:
		if st.ExitCode() != 0 {
			t.Fatalf("exit %d: %s", st.ExitCode(), out.String())
		}
	case <-time.After(StartLimit):
		t.Fatal("container did not exit")
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("delete task: %v", err)
	}
	if got := strings.TrimSpace(out.String()); got != "hello from Linux\n0" {
		t.Errorf("output %q", got)
	}
}
