package cgroups

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
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

func (d *cgroupfs) RemoveContainer(_ context.Context, cgroupsPath string) error {
	if !d.owns(cgroupsPath) {
		return nil
	}
	return d.remove(cgroupsPath)
}

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
