// Package kube gives integration tests a real control plane: Debian's etcd
// and a kube-apiserver built from the k8s.io/kubernetes module, with the Node
// authorizer and NodeRestriction, certificates made on the spot, and a
// kubectl of the same version, built from the same module, to use it as a
// user would.
//
// For e2e/kubeadm, BuildKubeadm adds kubeadm, kube-controller-manager,
// kube-scheduler and the etcd kubeadm deploys (built from
// go.etcd.io/etcd/server/v3, pinned by the same build module).
//
// kube-apiserver and kubectl (and, for hack/bench, the kubelet) are built
// once per machine into $PODSUP_TEST_CACHE/kube-<version>/<go.sum hash>
// (default /var/cache/podsup-test), under
// a file lock so that test packages running in parallel build it once; the
// build module is ./build, whose go.mod pins the version. Nothing built is
// committed.
//
// Version v1.37.2 is the newest k8s.io/kubernetes release whose apiserver
// works with etcd 3.4 (Debian bookworm's etcd-server 3.4.23), checked by
// the tests that use it.
package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podsup/podsup/internal/testenv"
)

// Version is the Kubernetes release of the kube-apiserver, as pinned by
// build/go.mod.
const Version = "v1.37.2"

// Binaries are the programs of a control plane.
type Binaries struct {
	APIServer string // kube-apiserver, static (CGO_ENABLED=0)
	Etcd      string // Debian's etcd
	Kubectl   string // kubectl of Version, static
}

// CacheDir is where built programs are kept across runs.
func CacheDir() string {
	if d := os.Getenv("PODSUP_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/podsup-test"
}

// Build returns the control plane's programs, building or fetching what
// the cache lacks. The first build takes minutes; later calls take none.
func Build(t testing.TB) Binaries {
	t.Helper()
	bins := buildInCache(t, map[string]string{"kube-apiserver": kubernetesCmd("kube-apiserver"), "kubectl": kubernetesCmd("kubectl")})
	b := Binaries{
		APIServer: filepath.Join(bins, "kube-apiserver"),
		Etcd:      "/usr/bin/etcd",
		Kubectl:   filepath.Join(bins, "kubectl"),
	}
	if err := aptInstall("etcd-server", b.Etcd); err != nil {
		testenv.Unavailable(t, "etcd: %v", err)
	}
	return b
}

// EtcdVersion is the etcd the build module pins (go.etcd.io/etcd/server/v3),
// the one kubeadm of Version deploys (its image tag is EtcdVersion+"-0").
const EtcdVersion = "3.7.0"

// KubeadmBinaries are the programs of a cluster kubeadm sets up: kubeadm
// itself and what its static pods run.
type KubeadmBinaries struct {
	Kubeadm, APIServer, ControllerManager, Scheduler, Kubectl string
	// Etcd is etcd EtcdVersion, built from go.etcd.io/etcd/server/v3:
	// Debian's 3.4 refuses the flags kubeadm gives etcd 3.6 and later.
	Etcd string
}

// BuildKubeadm returns kubeadm and the programs of its control plane,
// all of Version, building what the cache lacks, as Build does.
func BuildKubeadm(t testing.TB) KubeadmBinaries {
	t.Helper()
	pkgs := map[string]string{"etcd": "go.etcd.io/etcd/server/v3"}
	for _, name := range []string{"kubeadm", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		pkgs[name] = kubernetesCmd(name)
	}
	bins := buildInCache(t, pkgs)
	path := func(name string) string { return filepath.Join(bins, name) }
	return KubeadmBinaries{Kubeadm: path("kubeadm"), APIServer: path("kube-apiserver"), ControllerManager: path("kube-controller-manager"),
		Scheduler: path("kube-scheduler"), Kubectl: path("kubectl"), Etcd: path("etcd")}
}

// buildInCache builds each main package of pkgs, by the name of its
// program, into the cache directory of the build module's go.sum, unless it
// is there, and returns that directory.
func buildInCache(t testing.TB, pkgs map[string]string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the control plane harness needs root")
	}
	mod := buildModule()
	stamp, err := moduleStamp(mod)
	if err != nil {
		testenv.Unavailable(t, "build module: %v", err)
	}
	dir := filepath.Join(CacheDir(), "kube-"+Version)
	// One directory per go.sum of the build module: worktrees of branches
	// that build different commands from it do not rebuild over each
	// other's programs.
	bins := filepath.Join(dir, stamp)
	if err := os.MkdirAll(bins, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	// The build ends a minute before the test binary's -timeout would
	// panic, with an error that says why; what it compiled stays in Go's
	// build cache for the next run.
	ctx := context.Background()
	if dl, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dl.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Minute))
			defer cancel()
		}
	}
	names := make([]string, 0, len(pkgs))
	for name := range pkgs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := buildCommand(ctx, t.Logf, mod, pkgs[name], filepath.Join(bins, name)); err != nil {
			testenv.Unavailable(t, "build %s: %v", pkgs[name], err)
		}
	}
	return bins
}

// moduleStamp names a go.sum of the build module: a hash of it.
func moduleStamp(mod string) (string, error) {
	sum, err := os.ReadFile(filepath.Join(mod, "go.sum"))
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(sum)
	return hex.EncodeToString(h[:8]), nil
}

// lock takes an exclusive lock on path, waiting for it.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// buildModule is the directory of the build module, next to this file,
// found from the test's working directory (its package's, somewhere in
// podsup's module): a -trimpath build has no source paths to go by.
func buildModule() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(data), "module github.com/podsup/podsup\n") {
			return filepath.Join(d, "internal", "testenv", "kube", "build")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, "build") // not in the module: the error names where it looked
		}
	}
}

// kubernetesCmd is the package of the command of k8s.io/kubernetes/cmd
// named as out's base name (kube-apiserver, kubectl).
func kubernetesCmd(out string) string { return "k8s.io/kubernetes/cmd/" + filepath.Base(out) }

// buildCommand builds the main package pkg with the build module mod into
// out, unless it is there. It builds into a temporary file and renames it
// into place, so a build that dies leaves nothing half-written.
func buildCommand(ctx context.Context, logf func(format string, args ...any), mod, pkg, out string) error {
	name := filepath.Base(out)
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	logf("building %s into %s (once per machine; takes minutes)", pkg, out)
	start := time.Now()
	major, minor, _ := strings.Cut(strings.TrimPrefix(Version, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	v := "k8s.io/component-base/version"
	ldflags := fmt.Sprintf("-s -w -X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean",
		v, Version, v, major, v, minor, v)
	// A directory of this build's own: a build left running by a test that
	// died must not write into the file another build renames. Under the
	// lock, the directories of other builds are those of dead tests.
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".build-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(out), ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, filepath.Base(out))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, pkg)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test
	if output, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("not built after %s, too close to the test's -timeout; run the tests again (Go's build cache keeps what was compiled) or with a longer -timeout", time.Since(start).Round(time.Second))
		}
		return fmt.Errorf("%v\n%s", err, output)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("install %s: %w", name, err)
	}
	logf("built %s in %s", name, time.Since(start).Round(time.Second))
	return nil
}

// Kubelet returns the kubelet of the same release, for hack/bench's
// comparison: built from the same module into the same cache, under the
// same lock, unless it is there; logf says when a build starts and ends.
func Kubelet(logf func(format string, args ...any)) (string, error) {
	mod := buildModule()
	stamp, err := moduleStamp(mod)
	if err != nil {
		return "", fmt.Errorf("build module: %w", err)
	}
	dir := filepath.Join(CacheDir(), "kube-"+Version)
	bins := filepath.Join(dir, stamp)
	if err := os.MkdirAll(bins, 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	out := filepath.Join(bins, "kubelet")
	if err := buildCommand(context.Background(), logf, mod, kubernetesCmd(out), out); err != nil {
		return "", fmt.Errorf("build kubelet %s: %w", Version, err)
	}
	return out, nil
}

// aptInstall installs a Debian package unless path, one of its files, is
// there.
func aptInstall(pkg, path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	install := func() ([]byte, error) {
		cmd := exec.Command("apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err == nil {
		return nil
	}
	if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v\n%s", err, out)
	}
	if out, err := install(); err != nil {
		return fmt.Errorf("apt-get install %s: %v\n%s", pkg, err, out)
	}
	return nil
}
