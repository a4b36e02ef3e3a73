//go:build integration

package harness

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Network is a CNI configuration of a test's own: a bridge and a subnet no
// other test uses, with host-local's allocations in the test's root
// directory so they can be counted.
type Network struct {
	confDir, ipamDir string
	Bridge, Subnet   string
	lock             *os.File // holds the subnet until release
}

// subnetLocks is where a test holds the lock of the third octet of its
// subnet (10.123.<n>.0): an flock on a file, which the kernel releases
// when the test process ends however it ends, so that tests of packages
// running at the same time never pick the same subnet.
const subnetLocks = "/run/podsup-e2e-subnets"

// NewNetwork makes a bridge network for e with a subnet of the given
// prefix length (24 or longer) and makes it the one e.Start uses.
func NewNetwork(t *testing.T, e *Env, prefix int) *Network {
	t.Helper()
	octet, lock := lockSubnet(t)
	// The bridge's name, and so the network's, is new for every test: the
	// bridge plugin names a pod's iptables rules after the network and the
	// sandbox ID, which is the same for a pod of the same name in every
	// test.
	n := &Network{
		confDir: t.TempDir(),
		Bridge:  fmt.Sprintf("pse%d-%04x", octet, rand.IntN(1<<16)),
		Subnet:  fmt.Sprintf("10.123.%d.0/%d", octet, prefix),
		ipamDir: filepath.Join(e.Root, "test-ipam"),
		lock:    lock,
	}
	removeStaleBridges(fmt.Sprintf("pse%d-", octet))
	n.Write(t, "bridge")
	e.Network = n // Leaks checks its veths and allocations
	e.networks = append(e.networks, n)
	return n
}

// release deletes the bridge and frees the subnet. The Env calls it once
// podsup is stopped and the pods' networks are released.
func (n *Network) release() {
	exec.Command("ip", "link", "del", n.Bridge).Run()
	n.lock.Close()
}

// removeStaleBridges deletes the bridges whose names start with prefix:
// the lock of their subnet is free, so they are left by a test process
// that was killed, and their address would clash with the new bridge's.
func removeStaleBridges(prefix string) {
	out, _ := exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	for _, line := range strings.Split(string(out), "\n") {
		// "12: pse5-1a2b: <BROADCAST,...> ..."
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], prefix) {
			exec.Command("ip", "link", "del", strings.TrimSuffix(f[1], ":")).Run()
		}
	}
}

// lockSubnet takes a free third octet for a subnet, held until the lock
// file is closed.
func lockSubnet(t *testing.T) (int, *os.File) {
	t.Helper()
	if err := os.MkdirAll(subnetLocks, 0o755); err != nil {
		t.Fatal(err)
	}
	const octets = 250
	first := rand.IntN(octets)
	for i := range octets {
		octet := (first+i)%octets + 1
		f, err := os.OpenFile(filepath.Join(subnetLocks, fmt.Sprint(octet)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return octet, f
	}
	t.Fatalf("all %d test subnets are taken", octets)
	return 0, nil
}

// Write writes the configuration list with the given main plugin type.
func (n *Network) Write(t *testing.T, pluginType string) {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "e2e-%s", "plugins": [
  {"type": %q, "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]}`, n.Bridge, pluginType, n.Bridge, n.Subnet, n.ipamDir)
	if err := os.WriteFile(filepath.Join(n.confDir, "10-e2e.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Args are the flags that make podsup use the network.
func (n *Network) Args() []string { return []string{"--cni-conf-dir", n.confDir} }

// Allocations counts host-local's allocated addresses.
func (n *Network) Allocations() int { return len(n.allocationOwners()) }

// Veths counts the interfaces enslaved to the bridge.
func (n *Network) Veths() int {
	out, _ := exec.Command("ip", "-o", "link", "show", "master", n.Bridge).Output()
	return strings.Count(string(out), "\n")
}

// Gateway is the bridge's address on the subnet.
func (n *Network) Gateway() string {
	return strings.TrimSuffix(strings.SplitN(n.Subnet, "/", 2)[0], "0") + "1"
}
