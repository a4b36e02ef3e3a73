//go:build integration

package kubeadm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// advertiseAddress is the address of the box's own interface: the
// apiserver's advertise address and the nodes' InternalIP. kubeadm wants
// one that is not loopback, and the box has no other; TEST-NET-1 (RFC
// 5737), private to the box's network namespace.
const advertiseAddress = "192.0.2.10"

// box is a mount and network namespace of the test's own, in which kubeadm
// finds its fixed paths and ports free: /etc, /usr/libexec and /var/lib are
// overlays whose changes land in the test's directory (kubeadm writes
// /etc/kubernetes, the controller manager's hostPath creates
// /usr/libexec/kubernetes); /var/lib/kubelet and /var/lib/etcd are test
// directories bound over the host's, or over directories the box makes in
// its overlay where the host has none (a host without a kubelet has no
// /var/lib/kubelet, and the box must not make one there); and the network
// has only lo and an interface with advertiseAddress (one end of a veth
// pair whose other end is in the box too: this kernel has no dummy
// interfaces). A long-lived process holds the namespaces; everything the
// test runs in them (containerd, podsup, kubeadm, kubectl) enters them with
// nsenter.
type box struct {
	t      *testing.T
	dir    string
	holder *exec.Cmd
	pid    string
}

// Where the box's private views of the host's paths are, on the host.
func (b *box) etc() string     { return filepath.Join(b.dir, "etc", "upper") }
func (b *box) kubelet() string { return filepath.Join(b.dir, "kubelet") }
func (b *box) etcd() string    { return filepath.Join(b.dir, "etcd") }

// newBox makes the namespaces and mounts, and ends every process in them
// when the test ends.
func newBox(t *testing.T) *box {
	t.Helper()
	for _, tool := range []string{"unshare", "nsenter", "ip", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "%s is not installed (util-linux, iproute2): %v", tool, err)
		}
	}
	b := &box{t: t, dir: t.TempDir()}
	for _, d := range []string{"etc/upper", "etc/work", "libexec/upper", "libexec/work", "varlib/upper", "varlib/work", "kubelet", "etcd"} {
		if err := os.MkdirAll(filepath.Join(b.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b.holder = exec.Command("unshare", "--mount", "--net", "--propagation", "private", "sleep", "infinity")
	b.holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.holder.Start(); err != nil {
		t.Fatalf("start the namespaces' holder: %v", err)
	}
	b.pid = strconv.Itoa(b.holder.Process.Pid)
	t.Cleanup(b.close)
	// unshare makes the namespaces, then becomes sleep.
	self, _ := os.Readlink("/proc/self/ns/net")
	if _, ok := testenv.Poll(testenv.StartLimit, func() bool {
		ns, err := os.Readlink("/proc/" + b.pid + "/ns/net")
		return err == nil && ns != self
	}); !ok {
		t.Fatalf("unshare (pid %s) made no network namespace within %s", b.pid, testenv.StartLimit)
	}
	overlay := func(target, name string) string {
		return fmt.Sprintf("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s",
			target, filepath.Join(b.dir, name, "upper"), filepath.Join(b.dir, name, "work"), target)
	}
	setup := strings.Join([]string{
		overlay("/etc", "etc"),
		overlay("/usr/libexec", "libexec"),
		overlay("/var/lib", "varlib"),
		"mkdir -p /var/lib/kubelet /var/lib/etcd",
		"mount --bind " + b.kubelet() + " /var/lib/kubelet",
		"mount --bind " + b.etcd() + " /var/lib/etcd",
		"ip link set lo up",
		"ip link add kubeadm0 type veth peer name kubeadm1",
		"ip addr add " + advertiseAddress + "/24 dev kubeadm0",
		"ip link set kubeadm0 up",
		"ip link set kubeadm1 up",
		// Per network namespace, and off in a new one: kubeadm's preflight
		// wants it on, as a node forwarding pod traffic needs.
		"echo 1 > /proc/sys/net/ipv4/ip_forward",
	}, " && ")
	if out, err := b.command("sh", "-ec", setup).CombinedOutput(); err != nil {
		t.Fatalf("set up the namespaces: %v\n%s", err, out)
	}
	return b
}

// enter is the argument list that runs args in the box.
func (b *box) enter(args ...string) []string {
	return append([]string{"nsenter", "--target", b.pid, "--mount", "--net", "--"}, args...)
}

// command is args run in the box.
func (b *box) command(args ...string) *exec.Cmd {
	a := b.enter(args...)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// run runs args in the box and returns their standard output; an error
// carries the standard error.
func (b *box) run(ctx context.Context, args ...string) (string, error) {
	a := b.enter(args...)
	cmd := exec.CommandContext(ctx, a[0], a[1:]...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// close kills what is still running in the box, by its network namespace
// (containers of host-network pods share it; nested mount namespaces of
// the box are in it too), then the holder: the mounts go with the last
// process of the mount namespace.
func (b *box) close() {
	netns, err := os.Readlink("/proc/" + b.pid + "/ns/net")
	if err == nil {
		self, _ := os.Readlink("/proc/self/ns/net")
		if netns == self {
			err = errors.New("the holder has not made its namespace")
		}
	}
	if err != nil {
		b.t.Logf("clean the box: %v", err)
	} else {
		// Killed processes leave when the kernel has torn them down,
		// which takes a while on a loaded machine.
		testenv.Poll(harness.Patience, func() bool {
			pids := b.processes(netns)
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return len(pids) == 0
		})
		if left := b.processes(netns); len(left) > 0 {
			b.t.Errorf("processes left in the box's network namespace: %v", left)
		}
	}
	b.holder.Process.Kill()
	b.holder.Wait()
}

// processes lists the processes in the network namespace netns other than
// the holder.
func (b *box) processes(netns string) []int {
	holder, _ := strconv.Atoi(b.pid)
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == holder {
			continue
		}
		if ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net")); err == nil && ns == netns {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}
