package runtime

import (
	"context"
	"fmt"
	"sync"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/image"
)

// Pull policies, as Kubernetes names them.
const (
	PullAlways       = v1.PullAlways
	PullIfNotPresent = v1.PullIfNotPresent
	PullNever        = v1.PullNever
)

// imageState is the runtime's image puller, made on first use with the
// runtime's client and snapshotter.
type imageState struct {
	opts   []image.PullerOption
	once   sync.Once
	puller *image.Puller
	err    error
}

// WithPullOptions configures image pulls: registries, credentials, how
// many run at once, progress reports.
func WithPullOptions(opts ...image.PullerOption) Option {
	return func(r *Runtime) error { r.images.opts = append(r.images.opts, opts...); return nil }
}

func (r *Runtime) puller() (*image.Puller, error) {
	r.images.once.Do(func() {
		opts := append([]image.PullerOption{image.WithSnapshotter(r.snapshotter), image.WithPullerLogger(r.log)}, r.images.opts...)
		r.images.puller, r.images.err = image.NewPuller(r.client, opts...)
	})
	return r.images.puller, r.images.err
}

// Pulls lists the image pulls waiting or running, for `podsup describe`.
func (r *Runtime) Pulls() []image.PullProgress {
	p, err := r.puller()
	if err != nil {
		return nil
	}
	return p.Pulls()
}

// Snapshotter is the snapshotter images are unpacked for.
func (r *Runtime) Snapshotter() string { return r.snapshotter }

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
// offline box can still restart its pods. opts carry the pod's pull secrets
// and where progress goes. The image is marked used now, for image garbage
// collection.
func (r *Runtime) EnsureImage(ctx context.Context, ref string, policy v1.PullPolicy, opts ...image.PullOption) (containerd.Image, error) {
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
		return r.use(ctx, img)
	case !present && policy == PullNever:
		return nil, fmt.Errorf("%w: image %s is not present and imagePullPolicy is Never", ErrImageNeverPull, name)
	}
	puller, err := r.puller()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImagePull, err)
	}
	pulled, err := puller.Pull(ctx, name, opts...)
	switch {
	case err == nil:
		return r.use(ctx, pulled)
	case ctx.Err() != nil:
		return nil, err
	case present:
		r.log.Warn("pull failed; using the image already present", "image", name, "err", err)
		return r.use(ctx, img)
	}
	return nil, fmt.Errorf("%w: pull %s: %v", ErrImagePull, name, err)
}

// use makes sure an image is unpacked and records its use.
func (r *Runtime) use(ctx context.Context, img containerd.Image) (containerd.Image, error) {
	if err := r.unpack(ctx, img); err != nil {
		return nil, err
	}
	if err := image.MarkUsed(ctx, r.client, img, r.clock.Now()); err != nil {
		r.log.Debug("cannot record the use of an image", "image", img.Name(), "err", err)
	}
	return img, nil
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
