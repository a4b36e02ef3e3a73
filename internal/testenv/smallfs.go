package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// StartSmallContainerd starts a private containerd (StartContainerd) whose
// root, and so its content store and snapshots, is on a tmpfs of size
// bytes, so a test can fill the image filesystem. When the test ends its
// namespaces are purged, it is stopped and the tmpfs is unmounted, before
// StartContainerd's own cleanup.
func StartSmallContainerd(t testing.TB, size int64) *Containerd {
	t.Helper()
	c := StartContainerd(t)
	root := filepath.Join(c.dir, "root")
	c.Stop()
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("podsup-test", root, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		Unavailable(t, "mount a tmpfs for containerd's root: %v", err)
	}
	t.Cleanup(func() {
		c.purge()
		c.Stop()
		if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
	})
	c.Start()
	return c
}

// Root is the directory of the daemon's content store and snapshots.
func (c *Containerd) Root() string { return filepath.Join(c.dir, "root") }
