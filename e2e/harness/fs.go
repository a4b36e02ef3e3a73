//go:build integration

package harness

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/podsup/podsup/internal/testenv"
)

// MountTmpfs mounts a tmpfs of size MiB on a new directory, unmounted when
// the test ends (after the Env has stopped podsup, if the Env was made
// first).
func MountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", size), "podsup-test", dir).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}
