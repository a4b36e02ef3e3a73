package runtime

import (
	"context"
	"fmt"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/distribution/reference"
	"golang.org/x/sync/singleflight"
	v1 "k8s.io/api/core/v1"
)

// Pull policies, as Kubernetes names them.
const (
	PullAlways       = v1.PullAlways
	PullIfNotPresent = v1.PullIfNotPresent
	PullNever        = v1.PullNever
)

// pulls makes two pods that want the same image cause one download.
var pulls singleflight.Group

// NormalizeRef turns a reference as a manifest writes it into the full form
// containerd stores: busybox becomes docker.io/library/busybox:latest.
func NormalizeRef(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	return named.String(), nil
}

// EnsureImage returns the image, pulling it as the policy says: Never uses
// only what is present, IfNotPresent pulls what is missing, Always pulls
// every time. When a pull for Always fails but the image is present, podsup
// uses the present one and says so (the kubelet fails the container): an
// offline box can still restart its pods.
func (r *Runtime) EnsureImage(ctx context.Context, ref string, policy v1.PullPolicy) (containerd.Image, error) {
	ctx = r.Context(ctx)
	name, err := NormalizeRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImagePull, err)
	}
	img, err := r.client.GetImage(ctx, name)
	present := err == nil
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("look up image %s: %w", name, err)
	}
	switch {
	case present && policy != PullAlways:
		return img, r.unpack(ctx, img)
	case !present && policy == PullNever:
		return nil, fmt.Errorf("%w: image %s is not present and imagePullPolicy is Never", ErrImageNeverPull, name)
	}
	pulled, err := r.pull(ctx, name)
	if err != nil {
		if present {
			r.log.Warn("pull failed; using the image already present", "image", name, "err", err)
			return img, r.unpack(ctx, img)
		}
		return nil, err
	}
	return pulled, nil
}

func (r *Runtime) pull(ctx context.Context, name string) (containerd.Image, error) {
	v, err, _ := pulls.Do(r.namespace+"\x00"+name, func() (any, error) {
		r.log.Info("pulling image", "image", name)
		img, err := r.client.Pull(ctx, name, containerd.WithPullUnpack, containerd.WithPullSnapshotter(r.snapshotter))
		if err != nil {
			return nil, fmt.Errorf("%w: pull %s: %v", ErrImagePull, name, err)
		}
		return img, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(containerd.Image), nil
}

// unpack makes sure an image's layers are unpacked for the snapshotter, as
// after an import that did not unpack.
func (r *Runtime) unpack(ctx context.Context, img containerd.Image) error {
	ok, err := img.IsUnpacked(ctx, r.snapshotter)
	if err != nil || ok {
		return err
	}
	if err := img.Unpack(ctx, r.snapshotter); err != nil {
		return fmt.Errorf("unpack %s: %w", img.Name(), err)
	}
	return nil
}
