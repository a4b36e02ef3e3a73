//go:build integration

package image_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/internal/testenv"
)

// busyboxAs is the busybox test image under another name.
func busyboxAs(t *testing.T, ref string) *image.Build {
	b, err := testenv.Busybox()
	if err != nil {
		testenv.Unavailable(t, "busybox test image: %v", err)
	}
	b.Ref = ref
	return b
}

// ociArchive is the image as an OCI layout tar.
func ociArchive(t *testing.T, b *image.Build) []byte {
	var buf bytes.Buffer
	if err := b.WriteArchive(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dockerArchive rewrites an OCI layout tar as `docker save` writes it:
// manifest.json with RepoTags, the config and an uncompressed layer.tar.
func dockerArchive(t *testing.T, oci []byte, repoTag string) []byte {
	files := map[string][]byte{}
	for _, e := range readTar(t, oci) {
		files[e.hdr.Name] = e.data
	}
	blob := func(d string) []byte { return files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] }
	var index ocispec.Index
	var manifest ocispec.Manifest
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest.String()), &manifest); err != nil {
		t.Fatal(err)
	}
	config := manifest.Config.Digest.Encoded()
	layer := manifest.Layers[0].Digest.Encoded()
	mf, _ := json.Marshal([]map[string]any{{"Config": config + ".json", "RepoTags": []string{repoTag}, "Layers": []string{layer + "/layer.tar"}}})
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, f := range []struct {
		name string
		data []byte
	}{{"manifest.json", mf}, {config + ".json", blob(manifest.Config.Digest.String())}, {layer + "/layer.tar", blob(manifest.Layers[0].Digest.String())}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		tw.Write(f.data)
	}
	tw.Close()
	return out.Bytes()
}

// tarEntry is one file of a tar.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, data []byte) []tarEntry {
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, tarEntry{hdr, body})
	}
}

// rewriteTar changes one file of a tar.
func rewriteTar(t *testing.T, data []byte, name string, change func([]byte) []byte) []byte {
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, e := range readTar(t, data) {
		if e.hdr.Name == name {
			e.data = change(e.data)
			e.hdr.Size = int64(len(e.data))
		}
		tw.WriteHeader(e.hdr)
		tw.Write(e.data)
	}
	tw.Close()
	return out.Bytes()
}

func gzipped(data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

// TestImportArchives imports OCI and docker archives, gzip'ed or not, with
// no registry: each image is named, unpacked and ready for a container.
func TestImportArchives(t *testing.T) {
	client := testenv.Client(t)
	ctx, _ := testenv.Namespace(t, client)
	dir := t.TempDir()
	oci := ociArchive(t, busyboxAs(t, "podsup.test/oci:1"))
	ociGz := ociArchive(t, busyboxAs(t, "podsup.test/oci-gz:1"))
	archives := map[string]struct {
		data []byte
		want string
	}{
		"oci.tar":       {oci, "podsup.test/oci:1"},
		"oci.tar.gz":    {gzipped(ociGz), "podsup.test/oci-gz:1"},
		"docker.tar":    {dockerArchive(t, oci, "podsup.test/docker:1"), "podsup.test/docker:1"},
		"docker.tar.gz": {gzipped(dockerArchive(t, oci, "busybox:imported")), "docker.io/library/busybox:imported"},
	}
	for name, a := range archives {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, a.data, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		imgs, err := image.ImportFile(ctx, client, testenv.Snapshotter, path, map[string]string{"podsup.test/label": "x"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s (%s): imported %s in %s", name, image.HumanBytes(int64(len(a.data))), imgs[0].Name, time.Since(start).Round(time.Millisecond))
		if len(imgs) != 1 || imgs[0].Name != a.want {
			t.Fatalf("%s: imported %+v, want %s", name, imgs, a.want)
		}
		img, err := client.GetImage(ctx, a.want)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := img.IsUnpacked(ctx, testenv.Snapshotter); !ok || err != nil {
			t.Errorf("%s: not unpacked (%v)", name, err)
		}
		if img.Labels()["podsup.test/label"] != "x" {
			t.Errorf("%s: labels %v", name, img.Labels())
		}
	}

	// The OCI layout's ref.name is only a tag, as the specification has
	// it, and nothing else names the image.
	data := rewriteTar(t, ociArchive(t, busyboxAs(t, "podsup.test/unnamed:1")), "index.json", func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"io.containerd.image.name":"podsup.test/unnamed:1",`), nil, 1)
	})
	_, err := image.ImportArchive(ctx, client, testenv.Snapshotter, bytes.NewReader(data), nil)
	if err == nil || !strings.Contains(err.Error(), "names none of its images") {
		t.Errorf("an archive without names: %v", err)
	}
}

// logBuffer collects log lines, for tests that count what was done.
type logBuffer struct{ testenv.SyncBuffer }

func (b *logBuffer) count(s string) int { return strings.Count(b.String(), s) }

// runPreloader runs a preloader on clk until the returned function stops
// it.
func runPreloader(t *testing.T, ctx context.Context, client *containerd.Client, dir string, logs *logBuffer, clk clock.WithTicker) func() {
	ctx, cancel := context.WithCancel(ctx)
	p := image.NewPreloader(dir, client, testenv.Snapshotter, slog.New(slog.NewTextHandler(logs, nil)), clk)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// preloadWait bounds the waits for imports into the real containerd.
const preloadWait = 2 * time.Minute

// waitStarted waits until a preloader on clk has done its start-up scan:
// its ticker, made after the scan, is its first timer.
func waitStarted(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	for deadline := time.Now().Add(preloadWait); !clk.HasWaiters(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the preloader did not finish its start-up scan within %s", preloadWait)
		}
	}
}

// TestPreloadDir: archives in the preload directory are imported at
// start-up and as they appear, once they have been quiet for a second of
// the preloader's clock; a restart does not import them again; a broken
// archive is reported and tried again only once it changes. The clock is
// fake, so a file the test is still writing stays unread however slowly the
// test writes it.
func TestPreloadDir(t *testing.T) {
	client := testenv.Client(t)
	ctx, _ := testenv.Namespace(t, client)
	dir := filepath.Join(t.TempDir(), "preload")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "first.tar"), ociArchive(t, busyboxAs(t, "podsup.test/first:1")), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "README"), []byte("not an archive"), 0o644)
	var logs logBuffer
	clk := clocktesting.NewFakeClock(time.Now())
	stop := runPreloader(t, ctx, client, dir, &logs, clk)
	waitStarted(t, clk)
	if _, err := client.GetImage(ctx, "podsup.test/first:1"); err != nil {
		t.Fatalf("not preloaded at start-up: %v\n%s", err, logs.String())
	}
	// advance runs the preloader's clock, a quarter of a second at a time,
	// until cond holds.
	advance := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(preloadWait); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s:\n%s", what, preloadWait, logs.String())
			}
			clk.Step(250 * time.Millisecond)
		}
	}
	// imported is whether the preloader has finished importing n archives:
	// an image is listed before it is unpacked.
	imported := func(n int) func() bool {
		return func() bool { return logs.count("preloaded images") >= n }
	}

	// Copied in the way a USB stick or scp does: written in parts, with
	// less than a second of the preloader's clock in between.
	second := gzipped(ociArchive(t, busyboxAs(t, "podsup.test/second:1")))
	f, err := os.Create(filepath.Join(dir, "second.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write(second[:len(second)/2])
	for range 3 {
		time.Sleep(100 * time.Millisecond) // for the preloader to see the write
		clk.Step(250 * time.Millisecond)
	}
	f.Write(second[len(second)/2:])
	f.Close()
	advance("second.tar.gz preloaded", imported(2))

	os.WriteFile(filepath.Join(dir, "broken.tar"), []byte("this is not a tar"), 0o644)
	advance("the broken archive reported", func() bool { return logs.count("cannot preload an image archive") > 0 })
	// A rescan of the directory is due at the next tick after this step;
	// the one that imports the third archive, if no earlier one.
	clk.Step(11 * time.Second)
	if err := os.WriteFile(filepath.Join(dir, "third.tar"), ociArchive(t, busyboxAs(t, "podsup.test/third:1")), 0o644); err != nil {
		t.Fatal(err)
	}
	advance("third.tar preloaded", imported(3))
	stop()
	for _, ref := range []string{"podsup.test/second:1", "podsup.test/third:1"} {
		if _, err := client.GetImage(ctx, ref); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
	if n := logs.count("preloaded images"); n != 3 {
		t.Errorf("%d imports, want 3:\n%s", n, logs.String())
	}
	if n := logs.count("cannot preload an image archive"); n != 1 {
		t.Errorf("broken archive reported %d times, want 1:\n%s", n, logs.String())
	}

	var again logBuffer
	clk = clocktesting.NewFakeClock(time.Now())
	stop = runPreloader(t, ctx, client, dir, &again, clk)
	waitStarted(t, clk)
	stop()
	if n := again.count("preloaded images"); n != 0 {
		t.Errorf("a restart imported %d unchanged archives again:\n%s", n, again.String())
	}
}

// TestPreloadRescanWaitsForQuiet: an archive that no event announces (a
// filesystem mounted over the directory) is found by the rescan, and read
// once, when it has stopped changing for a second of the preloader's
// clock, not while it is still being copied.
func TestPreloadRescanWaitsForQuiet(t *testing.T) {
	client := testenv.Client(t)
	ctx, _ := testenv.Namespace(t, client)
	dir := filepath.Join(t.TempDir(), "preload")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	clk := clocktesting.NewFakeClock(time.Now())
	stop := runPreloader(t, ctx, client, dir, &logs, clk)
	waitStarted(t, clk)
	// inotify watches the directory underneath: nothing written on the
	// tmpfs makes an event.
	if err := unix.Mount("podsup-test", dir, "tmpfs", 0, "size=64m"); err != nil {
		stop()
		testenv.Unavailable(t, "mount a tmpfs over the preload directory: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	defer stop()
	preloaded := func(name string) int {
		return logs.count(`msg="preloaded images" file=` + filepath.Join(dir, name) + " ")
	}
	advance := func(name string) {
		t.Helper()
		for deadline := time.Now().Add(preloadWait); preloaded(name) == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not preloaded within %s:\n%s", name, preloadWait, logs.String())
			}
			clk.Step(250 * time.Millisecond)
		}
	}

	archive := gzipped(ociArchive(t, busyboxAs(t, "podsup.test/copied:1")))
	f, err := os.Create(filepath.Join(dir, "copied.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	const parts = 20
	part := len(archive)/parts + 1
	f.Write(archive[:part])
	clk.Step(11 * time.Second) // a rescan is due
	// The copy goes on for five seconds of the preloader's clock, a part
	// every quarter of a second: never quiet for a second.
	for i := 1; i < parts; i++ {
		time.Sleep(20 * time.Millisecond)
		clk.Step(250 * time.Millisecond)
		f.Write(archive[i*part : min((i+1)*part, len(archive))])
	}
	f.Close()
	advance("copied.tar.gz")
	// A later rescan, the one that finds the next archive, must not read
	// the first again.
	clk.Step(11 * time.Second)
	if err := os.WriteFile(filepath.Join(dir, "next.tar"), ociArchive(t, busyboxAs(t, "podsup.test/next:1")), 0o644); err != nil {
		t.Fatal(err)
	}
	advance("next.tar")
	if n := preloaded("copied.tar.gz"); n != 1 || logs.count("cannot preload an image archive") != 0 {
		t.Errorf("the archive copied while a rescan ran was read %d times, want once, when whole:\n%s", n, logs.String())
	}
}

// BenchmarkImportArchive imports a 64 MiB image of random bytes from an
// archive file, uncompressed and gzip'ed, and prints the rate:
//
//	go test -tags integration -run '^$' -bench ImportArchive ./image
func BenchmarkImportArchive(b *testing.B) {
	client := testenv.Client(b)
	ctx, _ := testenv.Namespace(b, client)
	for _, gz := range []bool{false, true} {
		name := "tar"
		if gz {
			name = "tar.gz"
		}
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "image."+name)
			var size int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				data := make([]byte, 64<<20)
				rand.Read(data)
				ib := &image.Build{Ref: "podsup.test/bench:1", Files: []image.File{{Path: "/data", Mode: 0o644, Data: data}}}
				var buf bytes.Buffer
				if err := ib.WriteArchive(&buf); err != nil {
					b.Fatal(err)
				}
				archive := buf.Bytes()
				if gz {
					archive = gzipped(archive)
				}
				size = int64(len(archive))
				if err := os.WriteFile(path, archive, 0o644); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := image.ImportFile(ctx, client, testenv.Snapshotter, path, nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := client.ImageService().Delete(ctx, ib.Ref, images.SynchronousDelete()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(size)/(1<<20)/(b.Elapsed().Seconds()/float64(b.N)), "MiB/s")
		})
	}
}
