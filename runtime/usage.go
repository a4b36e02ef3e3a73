package runtime

import (
	"context"
	"fmt"
	"path/filepath"
)

// SnapshotUsage is the disk a container's writable layer takes: its
// snapshot's bytes and inodes, as the snapshotter counts them.
func (r *Runtime) SnapshotUsage(ctx context.Context, id string) (bytes, inodes uint64, err error) {
	u, err := r.client.SnapshotService(r.snapshotter).Usage(r.Context(ctx), id)
	if err != nil {
		return 0, 0, fmt.Errorf("usage of the writable layer of %s: %w", id, err)
	}
	return uint64(max(u.Size, 0)), uint64(max(u.Inodes, 0)), nil
}

// SnapshotRoot is the directory where containerd keeps the snapshotter's
// layers, the image filesystem: what the snapshotter plugin exports as its
// root, else the default place under /var/lib/containerd.
func (r *Runtime) SnapshotRoot(ctx context.Context) string {
	filter := fmt.Sprintf("type==io.containerd.snapshotter.v1,id==%s", r.snapshotter)
	resp, err := r.client.IntrospectionService().Plugins(ctx, filter)
	if err == nil {
		for _, p := range resp.Plugins {
			if root := p.Exports["root"]; root != "" {
				return root
			}
		}
	}
	return filepath.Join("/var/lib/containerd", "io.containerd.snapshotter.v1."+r.snapshotter)
}
