package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/opencontainers/go-digest"
)

// Imported is one image an archive held.
type Imported struct {
	Name   string
	Digest digest.Digest
	Size   int64 // bytes of content
}

// ImportArchive reads an OCI image layout or a `docker save` archive,
// uncompressed or compressed with gzip or zstd, into ctx's containerd
// namespace, and unpacks its images for the snapshotter so containers can
// be created from them at once. labels are set on every image. Images are
// named by their io.containerd.image.name or org.opencontainers.image.ref.name
// annotation, or by the archive's RepoTags; an archive without a name for
// its images is refused, since no pod could name them.
func ImportArchive(ctx context.Context, client *containerd.Client, snapshotter string, r io.Reader, labels map[string]string) ([]Imported, error) {
	stream, err := compression.DecompressStream(r)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	defer stream.Close()
	imgs, err := client.Import(ctx, stream, containerd.WithImageRefTranslator(ociRefName))
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	if len(imgs) == 0 {
		return nil, errors.New("the archive names none of its images: name them when saving (docker save NAME:TAG, or an org.opencontainers.image.ref.name annotation with the full reference)")
	}
	var out []Imported
	var errs []error
	for _, im := range imgs {
		for k, v := range labels {
			if err := setLabel(ctx, client, im.Name, k, v); err != nil {
				errs = append(errs, err)
			}
		}
		img := containerd.NewImage(client, im)
		if err := img.Unpack(ctx, snapshotter); err != nil {
			errs = append(errs, fmt.Errorf("unpack %s: %w", im.Name, err))
			continue
		}
		size, _ := img.Size(ctx)
		out = append(out, Imported{Name: im.Name, Digest: im.Target.Digest, Size: size})
	}
	return out, errors.Join(errs...)
}

// ImportFile imports an archive file ("-" is standard input).
func ImportFile(ctx context.Context, client *containerd.Client, snapshotter, path string, labels map[string]string) ([]Imported, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	out, err := ImportArchive(ctx, client, snapshotter, r, labels)
	if err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// ociRefName turns an OCI layout's org.opencontainers.image.ref.name into
// an image name: a full reference is normalized; a bare tag, as the OCI
// layout specification has it, names nothing.
func ociRefName(ref string) string {
	if !strings.ContainsAny(ref, "/:@") {
		return ""
	}
	return normalizeOrSelf(ref)
}

// imageNames lists the names of images, for messages.
func imageNames(imgs []Imported) string {
	names := make([]string, len(imgs))
	for i, im := range imgs {
		names[i] = im.Name
	}
	return strings.Join(names, ", ")
}
