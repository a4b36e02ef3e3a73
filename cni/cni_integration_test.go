//go:build integration

package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"golang.org/x/sys/unix"

	"github.com/podsup/podsup/internal/testenv"
)

// TestPodNetworking proves the feature with the real plugins: two pods
// reach each other by IP, the host reaches a pod, a pod's hostPort answers
// on the host, lo is up in a pod, and TearDown leaves nothing.
func TestPodNetworking(t *testing.T) {
	r := newRealNet(t, 24)
	m := r.manager()
	ctx := context.Background()
	hostPort := freePort(t)
	a, b := r.pod("a", PortMapping{HostPort: hostPort, ContainerPort: 8080, Protocol: "tcp"}), r.pod("b")
	resA, err := m.SetUp(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	resB, err := m.SetUp(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(resA.IPs) != 1 || !r.cidr.Contains(netip.MustParseAddr(resA.IPs[0].String())) || resA.Interface != "eth0" {
		t.Fatalf("result %+v: want one address in %s on eth0", resA, r.cidr)
	}
	serve(t, resA.NetNS, 8080, "hello from a")
	serve(t, resB.NetNS, 8080, "hello from b")
	ipA, ipB := resA.IPs[0].String(), resB.IPs[0].String()

	for _, c := range []struct {
		name, from, url, want string
	}{
		{"b reaches a by IP", resB.NetNS, "http://" + ipA + ":8080/", "hello from a"},
		{"a reaches b by IP", resA.NetNS, "http://" + ipB + ":8080/", "hello from b"},
		{"the host reaches a by IP", "", "http://" + ipA + ":8080/", "hello from a"},
		{"lo is up in a", resA.NetNS, "http://127.0.0.1:8080/", "hello from a"},
		{"a's hostPort answers on the bridge's address", "", fmt.Sprintf("http://%s:%d/", r.gateway(), hostPort), "hello from a"},
		{"a's hostPort answers on localhost", "", fmt.Sprintf("http://127.0.0.1:%d/", hostPort), "hello from a"},
		{"b reaches a's hostPort on the bridge's address", resB.NetNS, fmt.Sprintf("http://%s:%d/", r.gateway(), hostPort), "hello from a"},
		{"a reaches its own hostPort (hairpin)", resA.NetNS, fmt.Sprintf("http://%s:%d/", r.gateway(), hostPort), "hello from a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := fetch(c.from, c.url, time.Minute)
			if err != nil || got != c.want {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}

	for _, id := range []string{a.SandboxID, b.SandboxID} {
		if err := m.TearDown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	r.assertClean(a.SandboxID, b.SandboxID)
	if got, err := fetch("", fmt.Sprintf("http://127.0.0.1:%d/", hostPort), 0); err == nil {
		t.Errorf("hostPort still answers after TearDown: %q", got)
	}
}

// TestNamespaceMounts checks how namespaces are pinned, under a root
// directory on a shared mount as / is under systemd: the namespace directory
// is a shared mount point in a peer group of its own, and each namespace is
// mounted once, not also propagated back into the parent where no unmount
// would reach it. Inside, lo and eth0 are up.
func TestNamespaceMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "network integration tests need root")
	}
	root := t.TempDir()
	if err := unix.Mount(root, root, "none", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) }) // runs after the network's cleanup
	if err := unix.Mount("", root, "none", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	r := newRealNetAt(t, root, 24)
	m := r.manager()
	p := r.pod("mounts")
	res, err := m.SetUp(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	parent, dir := mountinfo(t, root), mountinfo(t, root+"/netns")
	if len(parent) != 1 || len(dir) != 1 {
		t.Fatalf("root mounted %d times, namespace directory %d times: %v %v", len(parent), len(dir), parent, dir)
	}
	parentGroup, dirGroup := peerGroup(parent[0]), peerGroup(dir[0])
	if dirGroup == "" || dirGroup == parentGroup {
		t.Errorf("namespace directory in peer group %q, root in %q: want a shared group of its own", dirGroup, parentGroup)
	}
	if ns := mountinfo(t, res.NetNS); len(ns) != 1 {
		t.Errorf("namespace mounted %d times: %v", len(ns), ns)
	}
	out, err := exec.Command("nsenter", "--net="+res.NetNS, "ip", "-o", "link", "show", "up").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	if !strings.Contains(string(out), " lo: ") || !strings.Contains(string(out), " eth0@") {
		t.Errorf("interfaces up in the pod:\n%s\nwant lo and eth0", out)
	}
	if err := m.TearDown(context.Background(), p.SandboxID); err != nil {
		t.Fatal(err)
	}
	r.assertClean(p.SandboxID)
}

// peerGroup is the shared:N tag of a mountinfo line, or empty.
func peerGroup(fields []string) string {
	for _, f := range fields[6:] {
		if f == "-" {
			break
		}
		if strings.HasPrefix(f, "shared:") {
			return f
		}
	}
	return ""
}

// TestNothingLeaksAfterACrash kills podsup, in effect, at three points and
// lets the next one's GC find what was left, with no sandbox live.
func TestNothingLeaksAfterACrash(t *testing.T) {
	ctx := context.Background()
	t.Run("between ADD and container start", func(t *testing.T) {
		r := newRealNet(t, 24)
		m := r.manager()
		a, b := r.pod("a", PortMapping{HostPort: freePort(t), ContainerPort: 80}), r.pod("b")
		for _, p := range []PodNetwork{a, b} {
			if _, err := m.SetUp(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		if n := r.allocations(); n != 2 {
			t.Fatalf("%d allocations, want 2", n)
		}
		m = nil // podsup dies; nothing is torn down
		if err := r.manager().GC(ctx, map[string]bool{}); err != nil {
			t.Fatal(err)
		}
		r.assertClean(a.SandboxID, b.SandboxID)
	})

	t.Run("in the middle of ADD", func(t *testing.T) {
		r := newRealNet(t, 24)
		m := r.manager()
		p := r.pod("half")
		// The namespace was made and the bridge plugin ran (a veth, an
		// address, masquerade rules); podsup died before portmap and before
		// libcni cached anything.
		nsPath := m.netnsPath(p.SandboxID)
		if err := m.opts.ns.create(nsPath, "", nil); err != nil {
			t.Fatal(err)
		}
		bridge := m.net.list.Plugins[0]
		conf, err := libcni.InjectConf(bridge, map[string]any{"name": m.net.list.Name, "cniVersion": m.net.list.CNIVersion})
		if err != nil {
			t.Fatal(err)
		}
		path, err := invoke.FindInPath("bridge", DefaultBinDirs())
		if err != nil {
			t.Fatal(err)
		}
		args := &invoke.Args{Command: "ADD", ContainerID: p.SandboxID, NetNS: nsPath, IfName: "eth0", Path: strings.Join(DefaultBinDirs(), ":")}
		if _, err := invoke.ExecPluginWithResult(ctx, path, conf.Bytes, args, nil); err != nil {
			t.Fatal(err)
		}
		if n := r.allocations(); n != 1 {
			t.Fatalf("%d allocations after the bridge plugin, want 1", n)
		}
		if err := r.manager().GC(ctx, nil); err != nil {
			t.Fatal(err)
		}
		r.assertClean(p.SandboxID)
	})

	t.Run("machine rebooted", func(t *testing.T) {
		r := newRealNet(t, 24)
		p := r.pod("before-reboot")
		res, err := r.manager().SetUp(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		// A reboot takes the namespace (and with it the veth) and the
		// iptables rules, and leaves the file, the cache and host-local's
		// allocation on disk.
		r.reboot(res, p.SandboxID)
		if n := r.allocations(); n != 1 {
			t.Fatalf("%d allocations after the reboot, want 1", n)
		}
		if err := r.manager().GC(ctx, nil); err != nil {
			t.Fatal(err)
		}
		r.assertClean(p.SandboxID)
	})
}

// TestSetUpAgainAfterInterfaceLost sets a sandbox up again after its veth
// went and libcni's cache stayed (what a TearDown cut short between the
// bridge plugin's DEL and libcni's cache removal leaves): the pod must get
// its network back, not the cached result of a network that is gone.
func TestSetUpAgainAfterInterfaceLost(t *testing.T) {
	t.Parallel() // a bridge and a subnet of its own
	r := newRealNet(t, 24)
	m := r.manager()
	ctx := context.Background()
	p := r.pod("lost")
	res, err := m.SetUp(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nsenter", "--net="+res.NetNS, "ip", "link", "del", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("delete eth0: %v: %s", err, out)
	}
	again, err := r.manager().SetUp(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, again.NetNS, 8080, "back")
	if got, err := fetch("", "http://"+again.IPs[0].String()+":8080/", time.Minute); err != nil || got != "back" {
		t.Errorf("the host reaching the pod set up again: %q, %v", got, err)
	}
	if n, veths := r.allocations(), r.bridgePorts(); n != 1 || veths != 1 {
		t.Errorf("%d addresses held and %d veths, want the pod's one of each", n, veths)
	}
	if err := m.TearDown(ctx, p.SandboxID); err != nil {
		t.Fatal(err)
	}
	r.assertClean(p.SandboxID)
}

// TestRestartsDoNotExhaustThePool restarts podsup 30 times on a pool of
// five addresses, which a leak at each restart would exhaust within six. Each time, a pod that kept running is live and keeps
// its address, and podsup dies right after setting up the network of a new
// sandbox whose containers never start.
func TestRestartsDoNotExhaustThePool(t *testing.T) {
	t.Parallel() // a bridge and a subnet of its own
	r := newRealNet(t, 29)
	ctx := context.Background()
	steady := r.pod("steady")
	first, err := r.manager().SetUp(ctx, steady)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{steady.SandboxID: true}
	var crashed []string
	for i := range 30 {
		m := r.manager()
		if err := m.GC(ctx, live); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		again, err := m.SetUp(ctx, steady)
		if err != nil || !again.IPs[0].Equal(first.IPs[0]) {
			t.Fatalf("restart %d: the running pod: %+v, %v; want its address %s kept", i, again, err, first.IPs[0])
		}
		p := r.pod("never-started")
		if _, err := m.SetUp(ctx, p); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		crashed = append(crashed, p.SandboxID)
	}
	if err := r.manager().GC(ctx, live); err != nil {
		t.Fatal(err)
	}
	if n, veths := r.allocations(), r.bridgePorts(); n != 1 || veths != 1 {
		t.Errorf("%d addresses held and %d veths, want the running pod's", n, veths)
	}
	r.assertCleanOf(crashed...)
}

// TestPoolDoesNotShrink removes and re-adds a pod 40 times on a pool of
// five addresses (a /29), which any leak would exhaust within six rounds
// (host-local hands the addresses out in turn, so 40 rounds go round the
// pool eight times), then fills the pool and overfills it.
func TestPoolDoesNotShrink(t *testing.T) {
	t.Parallel() // a bridge and a subnet of its own
	r := newRealNet(t, 29)
	m := r.manager()
	ctx := context.Background()
	var ids []string
	for i := range 40 {
		p := r.pod("web")
		if _, err := m.SetUp(ctx, p); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := m.TearDown(ctx, p.SandboxID); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if n := r.allocations(); n != 0 {
			t.Fatalf("round %d: %d addresses held after TearDown", i, n)
		}
		ids = append(ids, p.SandboxID)
	}
	r.assertClean(ids...)

	var full []string
	for i := range 5 {
		p := r.pod(fmt.Sprint("full-", i))
		if _, err := m.SetUp(ctx, p); err != nil {
			t.Fatalf("pod %d of a pool of 5: %v", i, err)
		}
		full = append(full, p.SandboxID)
	}
	extra := r.pod("one-too-many")
	_, err := m.SetUp(ctx, extra)
	if !errors.Is(err, ErrNetworkSetup) || !strings.Contains(err.Error(), `plugin type="bridge"`) ||
		!strings.Contains(err.Error(), "no IP addresses available") {
		t.Fatalf("SetUp on a full pool: %v; want ErrNetworkSetup naming the bridge plugin and the exhausted range", err)
	}
	t.Logf("full pool: %v", err)
	if n := r.allocations(); n != 5 {
		t.Errorf("%d addresses held, want the 5 of the running pods", n)
	}
	for _, id := range full {
		if err := m.TearDown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	r.assertClean(append(full, extra.SandboxID)...)
}

// TestFailingPluginLeavesNothing runs a configuration from the directory
// whose second plugin fails after the bridge plugin gave the pod a veth and
// an address: SetUp must undo it all and say which plugin failed and why.
func TestFailingPluginLeavesNothing(t *testing.T) {
	r := newRealNet(t, 24)
	ipam := r.root + "/cni/ipam"
	conf := fmt.Sprintf(`{"cniVersion":"0.4.0","name":"failing","plugins":[
		{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,
		 "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
		{"type":"tuning","sysctl":{"net.ipv4.conf.eth0.no_such_setting":"1"}}]}`, r.bridge, r.cidr, ipam)
	confDir := t.TempDir()
	if err := os.WriteFile(confDir+"/10-failing.conflist", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	r.opts = append(r.opts, WithConfDir(confDir))
	m := r.manager()
	p := r.pod("doomed")
	_, err := m.SetUp(context.Background(), p)
	if !errors.Is(err, ErrNetworkSetup) || !strings.Contains(err.Error(), `plugin type="tuning"`) ||
		!strings.Contains(err.Error(), "no_such_setting") {
		t.Fatalf("SetUp: %v; want ErrNetworkSetup naming the tuning plugin and the setting", err)
	}
	t.Logf("failing plugin: %v", err)
	r.assertClean(p.SandboxID)
}

// BenchmarkSetUpTearDown measures one pod's network coming up and going
// away on the real plugins, with and without a hostPort, and prints each
// half.
func BenchmarkSetUpTearDown(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ports []PortMapping
	}{
		{"no hostPort", nil},
		{"one hostPort", []PortMapping{{HostPort: 41000, ContainerPort: 80}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRealNet(b, 24, WithLogger(discard))
			m := r.manager()
			ctx := context.Background()
			var up, down time.Duration
			for b.Loop() {
				p := r.pod("bench", bc.ports...)
				start := time.Now()
				if _, err := m.SetUp(ctx, p); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := m.TearDown(ctx, p.SandboxID); err != nil {
					b.Fatal(err)
				}
				up += mid.Sub(start)
				down += time.Since(mid)
			}
			b.ReportMetric(float64(up.Microseconds())/1000/float64(b.N), "setup-ms/op")
			b.ReportMetric(float64(down.Microseconds())/1000/float64(b.N), "teardown-ms/op")
		})
	}
}
