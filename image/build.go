// Package image builds, imports, pulls and collects container images in
// podsup's containerd namespace.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one entry of an image layer.
type File struct {
	Path string      // absolute path inside the image
	Mode fs.FileMode // permission bits, plus fs.ModeDir or fs.ModeSymlink
	Data []byte      // content of a regular file
	Link string      // target of a symbolic link
}

// Build describes a single-layer image made from files on the host: the pause
// image, and the test images that keep podsup's tests offline.
type Build struct {
	Ref    string // full reference, such as localhost/podsup/pause:1
	Files  []File
	Config ocispec.ImageConfig
}

// epoch is the modification time of every file, so the same input always
// yields the same digests.
var epoch = time.Unix(0, 0).UTC()

// layer returns the uncompressed layer tar. Parent directories are added, and
// entries are sorted, so the output depends only on the files.
func (b *Build) layer() ([]byte, error) {
	entries := map[string]File{}
	for _, f := range b.Files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("image %s: file path %q must be absolute", b.Ref, f.Path)
		}
		p := path.Clean(f.Path)[1:]
		entries[p] = f
		for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if _, ok := entries[dir]; !ok {
				entries[dir] = File{Path: "/" + dir, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := entries[n]
		hdr := &tar.Header{Name: n, Mode: int64(f.Mode.Perm()), ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case f.Mode&fs.ModeDir != 0:
			hdr.Typeflag, hdr.Name = tar.TypeDir, n+"/"
		case f.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Link
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// blob is one content-addressed object of an OCI layout.
type blob struct {
	desc ocispec.Descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum[:])), Size: int64(len(data))}, data: data}
}

func jsonBlob(mediaType string, v any) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, err
	}
	return newBlob(mediaType, data), nil
}

// WriteArchive writes the image as an OCI image layout tar, the format
// `podsup image import` and `ctr images import` read.
func (b *Build) WriteArchive(w io.Writer) error {
	layerTar, err := b.layer()
	if err != nil {
		return err
	}
	layer := newBlob(ocispec.MediaTypeImageLayer, layerTar)
	config, err := jsonBlob(ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   b.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layer.desc.Digest}},
	})
	if err != nil {
		return err
	}
	manifest, err := jsonBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config.desc,
		Layers:    []ocispec.Descriptor{layer.desc},
	})
	if err != nil {
		return err
	}
	mdesc := manifest.desc
	mdesc.Platform = &ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	mdesc.Annotations = map[string]string{
		"io.containerd.image.name": b.Ref,
		ocispec.AnnotationRefName:  refTag(b.Ref),
	}
	index, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{mdesc}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(ocispec.ImageLayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	for _, bl := range []blob{layer, config, manifest} {
		if err := add("blobs/sha256/"+bl.desc.Digest.Encoded(), bl.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// refTag is the tag part of a reference, for the OCI ref.name annotation.
func refTag(ref string) string {
	for i := len(ref) - 1; i >= 0 && ref[i] != '/'; i-- {
		if ref[i] == ':' {
			return ref[i+1:]
		}
	}
	return "latest"
}

// Import builds the image into the client's namespace and unpacks it for the
// snapshotter, so containers can be created from it at once.
func (b *Build) Import(ctx context.Context, client *containerd.Client, snapshotter string) (containerd.Image, error) {
	var buf bytes.Buffer
	if err := b.WriteArchive(&buf); err != nil {
		return nil, fmt.Errorf("build image %s: %w", b.Ref, err)
	}
	imgs, err := client.Import(ctx, &buf)
	if err != nil {
		return nil, fmt.Errorf("import image %s: %w", b.Ref, err)
	}
	for _, im := range imgs {
		if im.Name != b.Ref {
			continue
		}
		img := containerd.NewImage(client, im)
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", b.Ref, err)
		}
		return img, nil
	}
	return nil, fmt.Errorf("import image %s: the archive held no image of that name", b.Ref)
}
