package cni

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/containerd/containerd/v2/pkg/sys"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// netnsOps makes and removes pods' network namespaces at paths.
type netnsOps interface {
	// create makes a new network namespace and pins it at path. With a
	// mapping, it makes the namespace inside a new user namespace of that
	// mapping, pinned at userns.
	create(path, userns string, mapping *specs.LinuxIDMapping) error
	// remove unpins and deletes path; a missing path is success.
	remove(path string) error
	// valid reports whether path pins a live network namespace; after a
	// reboot the file is still there but the mount is gone.
	valid(path string) bool
}

var _ netnsOps = (*bindMounts)(nil)

// bindMounts pins namespaces with bind mounts, as `ip netns add` does.
type bindMounts struct {
	mu       sync.Mutex
	dirReady map[string]bool // guarded by mu; directories made shared mount points
}

func (b *bindMounts) create(path, userns string, mapping *specs.LinuxIDMapping) (retErr error) {
	if err := b.prepareDir(filepath.Dir(path)); err != nil {
		return err
	}
	if mapping != nil {
		return b.createInUserNS(path, userns, mapping)
	}
	if err := mountPoint(path); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			os.Remove(path)
		}
	}()

	errc := make(chan error, 1)
	go func() {
		// Never unlocked: this thread's network namespace is changed for
		// good, so the runtime must throw the thread away when the goroutine
		// ends instead of handing it to other goroutines.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mount network namespace on %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// createInUserNS makes a network namespace inside a new user namespace of
// the mapping, as the CRI plugin does (containerd's own helper starts a
// process in both), and pins both.
func (b *bindMounts) createInUserNS(path, userns string, m *specs.LinuxIDMapping) (retErr error) {
	if err := b.prepareDir(filepath.Dir(userns)); err != nil {
		return err
	}
	for _, p := range []string{path, userns} {
		if err := mountPoint(p); err != nil {
			return err
		}
		defer func() {
			if retErr != nil {
				b.remove(p)
			}
		}()
	}
	idmap := fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
	return sys.UnshareAfterEnterUserns(idmap, idmap, unix.CLONE_NEWNET, func(pid int) error {
		for _, ns := range []struct{ kind, at string }{{"net", path}, {"user", userns}} {
			self := fmt.Sprintf("/proc/%d/ns/%s", pid, ns.kind)
			if err := unix.Mount(self, ns.at, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mount %s namespace on %s: %w", ns.kind, ns.at, err)
			}
		}
		return nil
	})
}

// mountPoint creates the empty file a namespace is bind-mounted on; one
// that exists is an error.
func mountPoint(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create namespace mount point: %w", err)
	}
	return f.Close()
}

// prepareDir makes dir a mount point of its own that is shared, so that an
// unmount of a namespace here also unmounts the copies that mount namespaces
// cloned since (a container being created) hold, and the namespace is freed.
// It is first made private to leave the peer group of its parent: under a
// shared / (systemd), each namespace mount would otherwise propagate back to
// the parent and be mounted twice, the second copy hidden and never
// unmounted. This is `ip netns add` with that flaw fixed.
func (b *bindMounts) prepareDir(dir string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dirReady[dir] {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		steps := []struct {
			source string
			flags  uintptr
			what   string
		}{
			{dir, unix.MS_BIND | unix.MS_REC, "mount --rbind"},
			{"", unix.MS_PRIVATE | unix.MS_REC, "mount --make-rprivate"},
			{"", unix.MS_SHARED | unix.MS_REC, "mount --make-rshared"},
		}
		for _, s := range steps {
			if err = unix.Mount(s.source, dir, "none", s.flags, ""); err != nil {
				err = fmt.Errorf("%s %s: %w", s.what, dir, err)
				break
			}
		}
	} else if err != nil {
		err = fmt.Errorf("mount --make-rshared %s: %w", dir, err)
	}
	if err != nil {
		return err
	}
	if b.dirReady == nil {
		b.dirReady = map[string]bool{}
	}
	b.dirReady[dir] = true
	return nil
}

func (b *bindMounts) remove(path string) error {
	// More than one mount may be stacked on the file (a crash between a
	// mount and its bookkeeping, an administrator's own); take them all.
	for range 8 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("unmount network namespace %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", path, err)
	}
	return nil
}

func (b *bindMounts) valid(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	// nsfs since Linux 3.19; procfs before.
	return st.Type == unix.NSFS_MAGIC || st.Type == unix.PROC_SUPER_MAGIC
}
