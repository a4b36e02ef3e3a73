//go:build integration

package cni

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"golang.org/x/sys/unix"

	"github.com/podsup/podsup/internal/testenv"
)

// realNet is the built-in network on the real plugins, with a bridge and a
// subnet of the test's own, under a root directory of its own.
type realNet struct {
	t      testing.TB
	root   string
	bridge string
	cidr   netip.Prefix
	opts   []Option
}

// newRealNet skips (fails under CI) without root, the plugins or the tools
// the tests drive pods with, and undoes everything the test made at its end:
// the sandboxes (through GC), the bridge and the namespace directory mount.
func newRealNet(t testing.TB, prefixLen int, opts ...Option) *realNet {
	t.Helper()
	return newRealNetAt(t, t.TempDir(), prefixLen, opts...)
}

// newRealNetAt is newRealNet with a root directory of the caller's.
func newRealNetAt(t testing.TB, root string, prefixLen int, opts ...Option) *realNet {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "network integration tests need root")
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := invoke.FindInPath(p, DefaultBinDirs()); err != nil {
			testenv.Unavailable(t, "CNI plugin %s: %v (install containernetworking-plugins)", p, err)
		}
	}
	for _, tool := range []string{"nsenter", "busybox", "iptables-save", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "%s: %v", tool, err)
		}
	}
	r := &realNet{t: t, root: root, bridge: "pst" + randomID(4), cidr: freeSubnet(t, prefixLen)}
	r.opts = append([]Option{
		WithRootDir(r.root), WithConfDir(t.TempDir()), WithBridgeName(r.bridge),
		WithPodCIDR(r.cidr.String()), WithLogger(testLogger(t)),
	}, opts...)
	t.Cleanup(r.cleanup)
	return r
}

// manager starts a manager on the test's root, as podsup does at start-up.
func (r *realNet) manager() *Manager {
	r.t.Helper()
	m, err := New(r.opts...)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *realNet) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if m, err := New(r.opts...); err == nil {
		if err := m.GC(ctx, nil); err != nil {
			r.t.Errorf("cleanup: %v", err)
		}
	}
	if out, err := exec.Command("ip", "link", "del", r.bridge).CombinedOutput(); err != nil &&
		!strings.Contains(string(out), "Cannot find device") {
		r.t.Errorf("cleanup: delete bridge %s: %v: %s", r.bridge, err, out)
	}
	// The namespace directory is a mount point of its own; t.TempDir could
	// not remove it.
	if err := unix.Unmount(filepath.Join(r.root, "netns"), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		r.t.Errorf("cleanup: %v", err)
	}
}

// pod is a pod of the test's own, with a unique sandbox ID.
func (r *realNet) pod(name string, ports ...PortMapping) PodNetwork {
	return PodNetwork{Namespace: "podsup-test", Name: name, UID: "uid-" + randomID(4), SandboxID: randomID(16), PortMappings: ports}
}

// allocations counts the addresses host-local holds for the network.
func (r *realNet) allocations() int {
	r.t.Helper()
	a, err := hostLocalAllocations(filepath.Join(r.root, "cni", "ipam"))
	if err != nil {
		r.t.Fatal(err)
	}
	return len(a)
}

// assertClean fails for anything of the sandboxes left on the machine, and
// for any address or veth of the network: there must be no pods left.
func (r *realNet) assertClean(ids ...string) {
	r.t.Helper()
	r.assertCleanOf(ids...)
	if n := r.allocations(); n != 0 {
		r.t.Errorf("host-local still holds %d addresses", n)
	}
	if n := r.bridgePorts(); n != 0 {
		r.t.Errorf("%d veths still on bridge %s", n, r.bridge)
	}
}

// assertCleanOf fails for anything of the sandboxes left on the machine: a
// namespace file or mount, an address, an iptables rule naming them, or a
// libcni cache entry.
func (r *realNet) assertCleanOf(ids ...string) {
	r.t.Helper()
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		r.t.Fatal(err)
	}
	nat, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		r.t.Fatal(err)
	}
	allocs, err := hostLocalAllocations(filepath.Join(r.root, "cni", "ipam"))
	if err != nil {
		r.t.Fatal(err)
	}
	for _, id := range ids {
		path := filepath.Join(r.root, "netns", id)
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			r.t.Errorf("%s: namespace file left (%v)", id, err)
		}
		if strings.Contains(string(mounts), path) {
			r.t.Errorf("%s: namespace still mounted", id)
		}
		if strings.Contains(string(nat), id) {
			r.t.Errorf("%s: iptables nat rules left:\n%s", id, grepLines(string(nat), id))
		}
		matches, _ := filepath.Glob(filepath.Join(r.root, "cni", "cache", "results", "*"+id+"*"))
		for _, m := range matches {
			r.t.Errorf("%s: cache entry %s left", id, filepath.Base(m))
		}
		for _, a := range allocs {
			if a.owner == id {
				r.t.Errorf("%s: still holds %s", id, a.ip)
			}
		}
	}
}

// bridgePorts counts the interfaces on the test's bridge: a veth per pod.
func (r *realNet) bridgePorts() int {
	ports, _ := os.ReadDir(filepath.Join("/sys/class/net", r.bridge, "brif"))
	return len(ports)
}

// reboot takes what a reboot of the machine would take of a sandbox: its
// namespace (and with it the veth) and the iptables rules naming it. The
// files under the root directory stay.
func (r *realNet) reboot(res *Result, id string) {
	r.t.Helper()
	ports := r.bridgePorts()
	if err := unix.Unmount(res.NetNS, unix.MNT_DETACH); err != nil {
		r.t.Fatal(err)
	}
	// The kernel destroys the namespace, and its end of the veth, in a
	// work queue of its own: later on a busy machine.
	if _, ok := testenv.Poll(time.Minute, func() bool { return r.bridgePorts() < ports }); !ok {
		r.t.Fatalf("the veth of %s still on bridge %s a minute after its namespace went", id, r.bridge)
	}
	nat, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		r.t.Fatal(err)
	}
	var chains []string
	for _, rule := range strings.Split(grepLines(string(nat), id), "\n") {
		spec, ok := strings.CutPrefix(rule, "-A ")
		if !ok {
			continue
		}
		// iptables-save quotes as a shell would.
		if out, err := exec.Command("sh", "-c", "iptables -t nat -D "+spec).CombinedOutput(); err != nil {
			r.t.Fatalf("%s: %v: %s", rule, err, out)
		}
		if _, target, ok := strings.Cut(spec, " -j "); ok && strings.HasPrefix(target, "CNI-") && !strings.HasPrefix(target, "CNI-HOSTPORT-") {
			chains = append(chains, target)
		}
	}
	for _, c := range chains {
		if out, err := exec.Command("iptables", "-t", "nat", "-X", c).CombinedOutput(); err != nil {
			r.t.Fatalf("delete chain %s: %v: %s", c, err, out)
		}
	}
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// freeSubnet picks a random subnet of 10.200.0.0/13 that no interface of
// the machine is on, so tests do not collide with each other or with a
// running podsup.
func freeSubnet(t testing.TB, prefixLen int) netip.Prefix {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		candidate := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200 + b[0]%8, b[1], b[2]}), prefixLen).Masked()
		taken := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(ipn.String()); err == nil && p.Overlaps(candidate) {
					taken = true
				}
			}
		}
		if !taken {
			return candidate
		}
	}
	t.Fatal("no free subnet in 10.200.0.0/13")
	return netip.Prefix{}
}

// gateway is the bridge's address: the first of the subnet, as host-local
// hands it out.
func (r *realNet) gateway() netip.Addr { return r.cidr.Addr().Next() }

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serve runs busybox httpd in a pod's namespace, answering body on port,
// until the test ends.
func serve(t *testing.T, netns string, port int, body string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+netns, "busybox", "httpd", "-f", "-p", fmt.Sprint(port), "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

// fetch gets a URL with busybox wget, from a pod's namespace or, with
// netns empty, from the host's, retrying for a while as a server starts.
// Each try is killed after ten seconds (long enough for a loaded machine to
// start nsenter and wget): Debian's busybox-static 1.35 wget crashes on its
// own -T.
func fetch(netns, url string, within time.Duration) (string, error) {
	args := []string{"busybox", "wget", "-q", "-O", "-", url}
	if netns != "" {
		args = append([]string{"nsenter", "--net=" + netns}, args...)
	}
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		cancel()
		if err == nil {
			return string(out), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort is a TCP port no other test gets.
func freePort(t *testing.T) int32 { return int32(testenv.FreePort(t)) }

// mountinfo returns the lines of /proc/self/mountinfo whose mount point is
// path.
func mountinfo(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == path {
			out = append(out, fields)
		}
	}
	return out
}

// testLogger logs to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
