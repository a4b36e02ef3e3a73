package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/image"
)

// imageVolumePrefix starts the key of every image volume's snapshot, which
// is never shaped like a container ID, so the sweep of containers' orphaned
// snapshots passes it over: "imagevolume-<pod hash>-<volume>".
const imageVolumePrefix = "imagevolume-"

func imageVolumeKey(podKey, volume string) string {
	return imageVolumePrefix + PodHash(podKey) + "-" + volume
}

// MountImage makes an image's content readable at dir, read-only, for the
// image volume named volume of the pod podKey: the image is pulled as
// src.PullPolicy says (with the pod's pull secrets), a read-only view of its
// layers is taken from the snapshotter and mounted at dir. The view stays
// until CleanupPod (or the sweep of a pod gone meanwhile) removes it; dir
// is unmounted with the pod's volumes.
func (r *Runtime) MountImage(ctx context.Context, podKey, volume string, src *v1.ImageVolumeSource, secrets []*v1.Secret, dir string) error {
	ctx = r.Context(ctx)
	img, err := r.EnsureImage(ctx, src.Reference, src.PullPolicy, image.WithPullSecrets(secrets))
	if err != nil {
		return err
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return fmt.Errorf("layers of %s: %w", src.Reference, err)
	}
	sn := r.client.SnapshotService(r.snapshotter)
	key := imageVolumeKey(podKey, volume)
	mounts, err := sn.View(ctx, key, identity.ChainID(diffIDs).String(),
		snapshots.WithLabels(map[string]string{LabelImage: src.Reference}))
	if errdefs.IsAlreadyExists(err) {
		// Left by a podsup that died before mounting it; its parent is
		// what it was then (the kubelet resolves an image volume once).
		mounts, err = sn.Mounts(ctx, key)
	}
	if err != nil {
		return fmt.Errorf("view of %s: %w", src.Reference, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range mounts {
		if !readOnly(mounts[i]) {
			mounts[i].Options = append(mounts[i].Options, "ro")
		}
	}
	if err := mount.All(mounts, dir); err != nil {
		return fmt.Errorf("mount the view of %s: %w", src.Reference, err)
	}
	return nil
}

// readOnly reports whether a mount is read-only already: "ro", or an
// overlay of lower directories only.
func readOnly(m mount.Mount) bool {
	upper := false
	for _, o := range m.Options {
		if o == "ro" {
			return true
		}
		upper = upper || strings.HasPrefix(o, "upperdir=")
	}
	return m.Type == "overlay" && !upper
}

// removeImageVolumes removes the image volume views of the pods whose hash
// keep does not accept: those of one pod at its removal, or of every pod
// whose directory is gone.
func (r *Runtime) removeImageVolumes(ctx context.Context, keep func(podHash string) bool) error {
	ctx = r.Context(ctx)
	sn := r.client.SnapshotService(r.snapshotter)
	var gone []string
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		rest, ok := strings.CutPrefix(info.Name, imageVolumePrefix)
		if hash, _, _ := strings.Cut(rest, "-"); ok && !keep(hash) {
			gone = append(gone, info.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var errs []error
	for _, key := range gone {
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove image volume %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// podDirExists reports whether a pod hash still has its directory.
func (r *Runtime) podDirExists(hash string) bool {
	_, err := os.Stat(filepath.Join(r.podsDir(), hash))
	return err == nil
}
