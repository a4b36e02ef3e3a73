package cgroups

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// cgroupfs places pods as the kubelet's cgroupfs driver does:
// <parent>/<qos>/pod<hash>/<container ID>, on v1 under every controller,
// on v2 once.
type cgroupfs struct {
	tree
	parent string
}

var _ Driver = (*cgroupfs)(nil)

func (*cgroupfs) Name() string { return CgroupFS }

func (d *cgroupfs) podPath(hash string, c string) string {
	return filepath.Join(d.parent, c, "pod"+hash)
}

func (d *cgroupfs) ContainerPath(pod Pod, id string) string {
	return filepath.Join(d.podPath(pod.Hash, classDir(pod.Class)), id)
}

func (d *cgroupfs) OOMKilled(cgroupsPath string) bool {
	return d.owns(cgroupsPath) && d.oomKilled(cgroupsPath)
}

// RemoveContainer removes a container's cgroup. Its task is deleted by
// then, so a process still in it is one its shim lost (containerd 2 under
// heavy load can start a second shim for a group, and the first keeps its
// processes, unreachable): it is killed, as the kubelet kills what is left
// in a pod's cgroup, and the removal waits for the kernel to take it.
func (d *cgroupfs) RemoveContainer(ctx context.Context, cgroupsPath string) error {
	if !d.owns(cgroupsPath) {
		return nil
	}
	err := d.remove(cgroupsPath)
	if !errors.Is(err, syscall.EBUSY) {
		return err
	}
	d.killAll(cgroupsPath)
	ctx, cancel := context.WithTimeout(ctx, lostProcessTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (processes killed, still there after %s)", err, lostProcessTimeout)
		case <-tick.C:
		}
		if err = d.remove(cgroupsPath); !errors.Is(err, syscall.EBUSY) {
			return err
		}
	}
}

// lostProcessTimeout bounds the wait for killed processes to leave a
// container's cgroup; the pod's next sync tries again.
const lostProcessTimeout = 30 * time.Second

func (d *cgroupfs) RemovePod(_ context.Context, hash string) error {
	var errs []error
	for _, c := range classes {
		if err := d.remove(d.podPath(hash, classDir(c))); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// owns reports whether a cgroupsPath is a cgroupfs path under the parent:
// a container made under another driver is left alone.
func (d *cgroupfs) owns(cgroupsPath string) bool {
	return strings.HasPrefix(cgroupsPath, d.parent+"/") && !strings.Contains(cgroupsPath, ":")
}
