package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FreePort is a TCP port for a test to listen on, on any address, that no
// other test of the suite gets until this one ends. Listening on port 0 and
// closing is a race: the kernel hands the same port out again, to a test
// of another package or as the source port of a connection (a CI run
// failed when podsup's healthz port was taken in between). These ports
// come from below the kernel's ephemeral range, which it never hands out
// by itself, and each is claimed by a lock on a file that every test
// process of the suite takes, held until the test ends.
func FreePort(t testing.TB) int {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "podsup-test-ports")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const lowest = 10000
	below := ephemeralStart()
	for range 1000 {
		port := lowest + rand.IntN(below-lowest)
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // another test's
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			f.Close() // something outside the suite listens on it
			continue
		}
		ln.Close()
		t.Cleanup(func() { f.Close() })
		return port
	}
	t.Fatalf("no free port in %d-%d", lowest, below-1)
	return 0
}

// FreeAddr is a loopback address with a port from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if fields := strings.Fields(string(data)); len(fields) == 2 {
			if n, err := strconv.Atoi(fields[0]); err == nil && n > 10000+1000 {
				return n
			}
		}
	}
	return 32768
}
