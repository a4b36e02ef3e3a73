package image

import (
	"context"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/distribution/reference"
	"golang.org/x/sys/unix"
)

// Labels podsup sets on images. containerd is the only database: these say
// what the collector needs to know across restarts.
const (
	// LabelLastUsed is when a container was last created from the image,
	// in RFC 3339; the collector removes the least recently used first.
	LabelLastUsed = "podsup.io/last-used"
	// LabelArchive is the fingerprint of the preloaded archive the image
	// came from, so an unchanged archive is not imported again.
	LabelArchive = "podsup.io/archive"
)

// markUsedEvery bounds how often LabelLastUsed is rewritten: a container
// that crash-loops does not write to containerd's database on every start.
const markUsedEvery = time.Minute

// MarkUsed records that a container is being created from img now.
func MarkUsed(ctx context.Context, client *containerd.Client, img containerd.Image, now time.Time) error {
	md := img.Metadata()
	if t, err := time.Parse(time.RFC3339, md.Labels[LabelLastUsed]); err == nil && now.Sub(t) < markUsedEvery && !t.After(now) {
		return nil
	}
	return setLabel(ctx, client, md.Name, LabelLastUsed, now.UTC().Format(time.RFC3339))
}

func setLabel(ctx context.Context, client *containerd.Client, name, key, value string) error {
	_, err := client.ImageService().Update(ctx, images.Image{Name: name, Labels: map[string]string{key: value}}, "labels."+key)
	if err != nil {
		return fmt.Errorf("label image %s: %w", name, err)
	}
	return nil
}

// ContainerdStore is the collector's view of the images of a containerd
// namespace (the context's).
type ContainerdStore struct {
	Client *containerd.Client
}

var _ GCStore = ContainerdStore{}

// Images lists the images with their size, age, last use, and whether a
// container uses them.
func (s ContainerdStore) Images(ctx context.Context) ([]GCImage, error) {
	list, err := s.Client.ImageService().List(ctx)
	if err != nil {
		return nil, err
	}
	containers, err := s.Client.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	used := map[string]bool{}
	for _, c := range containers {
		used[c.Image] = true
	}
	out := make([]GCImage, 0, len(list))
	for _, im := range list {
		size, _ := containerd.NewImage(s.Client, im).Size(ctx)
		created := im.CreatedAt
		if im.UpdatedAt.After(created) {
			created = im.UpdatedAt
		}
		last, _ := time.Parse(time.RFC3339, im.Labels[LabelLastUsed])
		out = append(out, GCImage{Name: im.Name, Size: size, Created: created, LastUsed: last, InUse: used[im.Name]})
	}
	return out, nil
}

// Remove deletes an image and waits for containerd to collect its content
// and snapshots, so the space is free when it returns.
func (s ContainerdStore) Remove(ctx context.Context, name string) error {
	return s.Client.ImageService().Delete(ctx, name, images.SynchronousDelete())
}

// ImageFS finds the directory of containerd's snapshotter (the kubelet's
// imagefs) and returns a function measuring its filesystem. podsup must see
// the same filesystem as containerd: run both on the host.
func ImageFS(ctx context.Context, client *containerd.Client, snapshotter string) (string, UsageFunc, error) {
	resp, err := client.IntrospectionService().Plugins(ctx, fmt.Sprintf("type==io.containerd.snapshotter.v1,id==%s", snapshotter))
	if err != nil {
		return "", nil, fmt.Errorf("ask containerd for snapshotter %s: %w", snapshotter, err)
	}
	var root string
	for _, p := range resp.Plugins {
		if r := p.Exports["root"]; r != "" {
			root = r
		}
	}
	if root == "" {
		return "", nil, fmt.Errorf("containerd does not say where snapshotter %s keeps its data", snapshotter)
	}
	usage := func() (FSUsage, error) { return Statfs(root) }
	if _, err := usage(); err != nil {
		return "", nil, err
	}
	return root, usage, nil
}

// Statfs measures the filesystem of path.
func Statfs(path string) (FSUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return FSUsage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	return FSUsage{Capacity: int64(st.Blocks) * int64(st.Bsize), Available: int64(st.Bavail) * int64(st.Bsize)}, nil
}

// normalizeOrSelf is the full form of a reference (busybox becomes
// docker.io/library/busybox:latest), or the string itself if it is none.
func normalizeOrSelf(ref string) string {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return ref
	}
	return named.String()
}
