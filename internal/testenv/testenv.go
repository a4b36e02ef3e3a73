// Package testenv gives integration tests the real things they run against:
// a containerd client, a containerd namespace of their own that is emptied
// when the test ends, and images built offline from the host's binaries.
//
// Integration tests live in files named *_integration_test.go behind the
// "integration" build tag; `go test ./...` runs only unit tests, and
// hack/test.sh runs both.
package testenv

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/podsup/podsup/image"
)

// BusyboxRef is the test image with busybox and its applets.
const BusyboxRef = "podsup.test/busybox:1"

// Snapshotter is the snapshotter the tests unpack into.
const Snapshotter = "overlayfs"

// StartLimit bounds the waits for the programs the tests run against
// (containerd, a registry) to answer, and for them to do what a test asked:
// far longer than anything takes on a machine whose cores are all busy, so
// only a program that never answers fails a test.
const StartLimit = 2 * time.Minute

// Address is containerd's socket: $PODSUP_TEST_CONTAINERD, or the default.
func Address() string {
	if a := os.Getenv("PODSUP_TEST_CONTAINERD"); a != "" {
		return a
	}
	return "/run/containerd/containerd.sock"
}

// Unavailable ends a test that cannot reach what it needs: it fails under CI
// (CI=true), where every integration test must run, and skips elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (run hack/test.sh as root to set it up)", args...)
}

// Client connects to containerd, and closes the connection after the test.
func Client(t testing.TB) *containerd.Client {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "integration tests need root")
	}
	client, err := containerd.New(Address(), containerd.WithTimeout(StartLimit))
	if err != nil {
		Unavailable(t, "containerd at %s: %v", Address(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartLimit)
	defer cancel()
	if _, err := client.Version(ctx); err != nil {
		client.Close()
		Unavailable(t, "containerd at %s: %v", Address(), err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// Namespace makes a containerd namespace for this test alone, returns its
// name and a context in it, and removes everything in it when the test ends.
func Namespace(t testing.TB, client *containerd.Client) (context.Context, string) {
	t.Helper()
	ns := "podsup-test-" + randomHex(4)
	t.Cleanup(func() {
		if err := Purge(client, ns); err != nil {
			t.Errorf("clean namespace %s: %v", ns, err)
		}
	})
	return namespaces.WithNamespace(context.Background(), ns), ns
}

// Purge kills and deletes every task, container, image, snapshot and lease of
// a namespace, then the namespace itself.
func Purge(client *containerd.Client, ns string) error {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 5*StartLimit)
	defer cancel()
	var errs []error
	containers, err := client.Containers(ctx)
	if err != nil {
		return err
	}
	for _, c := range containers {
		if task, err := c.Task(ctx, nil); err == nil {
			_ = task.Kill(ctx, syscall.SIGKILL)
			if ch, err := task.Wait(ctx); err == nil {
				select {
				case <-ch:
				case <-time.After(StartLimit):
				}
			}
			if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete task %s: %w", c.ID(), err))
			}
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete container %s: %w", c.ID(), err))
		}
	}
	imgs, err := client.ImageService().List(ctx)
	if err == nil {
		for _, img := range imgs {
			_ = client.ImageService().Delete(ctx, img.Name)
		}
	}
	if leases, err := client.LeasesService().List(ctx); err == nil {
		for _, l := range leases {
			_ = client.LeasesService().Delete(ctx, l)
		}
	}
	sn := client.SnapshotService(Snapshotter)
	for attempt := 0; attempt < 10; attempt++ {
		var keys []string
		_ = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			keys = append(keys, info.Name)
			return nil
		})
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			_ = sn.Remove(ctx, k) // parents fail until their children are gone
		}
		// A child removed a moment ago can still hold its parent back.
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
	store := client.ContentStore()
	var blobs []content.Info
	_ = store.Walk(ctx, func(info content.Info) error {
		blobs = append(blobs, info)
		return nil
	})
	for _, b := range blobs {
		_ = store.Delete(ctx, b.Digest)
	}
	if err := client.NamespaceService().Delete(ctx, ns); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete namespace: %w", err))
	}
	if err := RemoveCgroups("/" + ns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RemoveCgroups removes a cgroup subtree from every hierarchy, deepest
// first; podsup names its cgroup parent after its containerd namespace.
func RemoveCgroups(parent string) error {
	hierarchies, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var errs []error
	for _, h := range hierarchies {
		root := filepath.Join("/sys/fs/cgroup", h.Name(), parent)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// busyboxPath is where Debian's busybox-static puts its binary.
const busyboxPath = "/bin/busybox"

// Busybox returns the build of the test image: the host's static busybox with
// a link for each applet, /etc/passwd and /etc/group with root and nobody,
// and /tmp.
func Busybox() (*image.Build, error) {
	if err := checkStatic(busyboxPath); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(busyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	files := []image.File{
		{Path: "/bin/busybox", Mode: 0o755, Data: bin},
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
		{Path: "/tmp", Mode: fs.ModeDir | 0o777},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" {
			continue
		}
		files = append(files, image.File{Path: "/" + applet, Mode: fs.ModeSymlink | 0o777, Link: "/bin/busybox"})
	}
	return &image.Build{
		Ref:   BusyboxRef,
		Files: files,
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
	}, nil
}

// checkStatic refuses a dynamically linked binary, which would not run in an
// image without its libraries (Debian's non-static busybox package).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w (install busybox-static)", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; install busybox-static", path)
		}
	}
	return nil
}

// ImportBusybox imports the busybox test image into ctx's namespace.
func ImportBusybox(t testing.TB, ctx context.Context, client *containerd.Client) containerd.Image {
	t.Helper()
	b, err := Busybox()
	if err != nil {
		Unavailable(t, "busybox test image: %v", err)
	}
	img, err := b.Import(ctx, client, Snapshotter)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// GRPCHealthRef is the test image with busybox and a gRPC health server at
// /grpchealth (see internal/testenv/grpchealth).
const GRPCHealthRef = "podsup.test/grpchealth:1"

// ImportGRPCHealth builds the gRPC health server from source, statically, and
// imports the busybox image with it added into ctx's namespace.
func ImportGRPCHealth(t testing.TB, ctx context.Context, client *containerd.Client) {
	t.Helper()
	b, err := Busybox()
	if err != nil {
		Unavailable(t, "busybox test image: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "grpchealth")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/podsup/podsup/internal/testenv/grpchealth")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build grpchealth: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	b.Ref = GRPCHealthRef
	b.Files = append(b.Files, image.File{Path: "/grpchealth", Mode: 0o755, Data: data})
	if _, err := b.Import(ctx, client, Snapshotter); err != nil {
		t.Fatal(err)
	}
}
