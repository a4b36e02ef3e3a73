package cgroups

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/opencontainers/cgroups/systemd"
)

// systemdDriver places pods as the kubelet's systemd driver does: a slice
// per QoS class and per pod, <parent>-<qos>-pod<hash>.slice, and a scope
// per container that runc asks systemd for, <prefix>-<container ID>.scope.
// The OCI cgroupsPath is systemd's "slice:prefix:name".
type systemdDriver struct {
	tree
	// prefix names the slices (the parent without "/"; "-" is systemd's
	// separator of slice levels, so it becomes "_").
	prefix string
	stop   func(ctx context.Context, unit string) error
}

var _ Driver = (*systemdDriver)(nil)

func newSystemd(t tree, parent string, stop func(context.Context, string) error) *systemdDriver {
	prefix := strings.ReplaceAll(strings.Trim(parent, "/"), "-", "_")
	return &systemdDriver{tree: t, prefix: prefix, stop: stop}
}

func (*systemdDriver) Name() string { return Systemd }

func (d *systemdDriver) podSlice(hash, c string) string {
	return fmt.Sprintf("%s-%s-pod%s.slice", d.prefix, c, hash)
}

func (d *systemdDriver) ContainerPath(pod Pod, id string) string {
	return d.podSlice(pod.Hash, classDir(pod.Class)) + ":" + d.prefix + ":" + id
}

// dir is where systemd puts the scope of an OCI cgroupsPath, relative to
// a hierarchy's root: the slice expanded into its parents, then the scope.
func (d *systemdDriver) dir(cgroupsPath string) (string, bool) {
	parts := strings.Split(cgroupsPath, ":")
	if len(parts) != 3 || parts[1] != d.prefix {
		return "", false
	}
	slice, err := systemd.ExpandSlice(parts[0])
	if err != nil {
		return "", false
	}
	return filepath.Join(slice, parts[1]+"-"+parts[2]+".scope"), true
}

func (d *systemdDriver) OOMKilled(cgroupsPath string) bool {
	dir, ok := d.dir(cgroupsPath)
	return ok && d.oomKilled(dir)
}

// RemoveContainer removes a scope systemd no longer runs anything in; a
// scope whose processes exit is removed by systemd itself.
func (d *systemdDriver) RemoveContainer(_ context.Context, cgroupsPath string) error {
	dir, ok := d.dir(cgroupsPath)
	if !ok {
		return nil
	}
	return d.remove(dir)
}

// RemovePod stops the pod's slice (systemd's record of it), as the
// kubelet does, then removes what is left of its cgroups.
func (d *systemdDriver) RemovePod(ctx context.Context, hash string) error {
	var errs []error
	for _, c := range classes {
		slice := d.podSlice(hash, classDir(c))
		dir, err := systemd.ExpandSlice(slice)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !d.exists(dir) {
			continue
		}
		if err := d.stop(ctx, slice); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", slice, err))
		}
		if err := d.remove(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopUnit asks systemd over D-Bus to stop a unit and waits for the job.
func stopUnit(ctx context.Context, unit string) error {
	conn, err := sddbus.NewWithContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, unit, "replace", done); err != nil {
		var dbusErr godbus.Error
		if errors.As(err, &dbusErr) && dbusErr.Name == "org.freedesktop.systemd1.NoSuchUnit" {
			return nil // a unit systemd does not know is stopped
		}
		return err
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("stop job %s", result)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
