//go:build integration

package runtime_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/runtime"
)

// TestCgroupDriverFromContainerd: containerd 2 says which cgroup driver its
// CRI runtime uses (here cgroupfs: runc without SystemdCgroup), and that
// wins over --cgroup-driver, as the runtime's answer does for the kubelet;
// containerd 1.6 cannot say, and the flag stays in force.
func TestCgroupDriverFromContainerd(t *testing.T) {
	client := testenv.Client(t)
	_, ns := testenv.Namespace(t, client)
	rt, err := runtime.New(testenv.Address(), runtime.WithNamespace(ns), runtime.WithRootDir(t.TempDir()), runtime.WithLogDir(t.TempDir()),
		runtime.WithCgroupDriver("systemd"), runtime.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	version, err := rt.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	driver, fromContainerd := rt.UseRuntimeCgroupDriver(context.Background())
	t.Logf("%s: cgroup driver %s, chosen by containerd: %v", version, driver, fromContainerd)
	if strings.HasPrefix(version, "containerd://1.") {
		if fromContainerd || driver != "systemd" || rt.CgroupDriver() != "systemd" {
			t.Errorf("%s: driver %q (from containerd: %v), want the flag's systemd", version, driver, fromContainerd)
		}
		return
	}
	if !fromContainerd || driver != "cgroupfs" || rt.CgroupDriver() != "cgroupfs" {
		t.Errorf("%s: driver %q (from containerd: %v), want containerd's cgroupfs", version, driver, fromContainerd)
	}
}
