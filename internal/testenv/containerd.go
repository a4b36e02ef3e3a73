package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// Containerd is a containerd daemon of a test's own, so the test can stop
// and start it without disturbing anything else.
type Containerd struct {
	t       testing.TB
	dir     string
	bin     string // the containerd binary
	binDir  string // BinDir(), put first on the daemon's PATH; "" for PATH as is
	Address string
	Major   int // the daemon's major version
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has exited
	log     *os.File
	prefix  []string // runs the daemon under these (WithCommandPrefix)
	cri     bool     // the CRI plugin is on (WithCRI)
}

// ContainerdOption changes how a private containerd runs.
type ContainerdOption func(*Containerd)

// WithCommandPrefix runs the daemon as an argument of another program,
// such as nsenter into a test's mount and network namespaces: its shims
// and their containers then live there too.
func WithCommandPrefix(prefix ...string) ContainerdOption {
	return func(c *Containerd) { c.prefix = prefix }
}

// WithCRI leaves the CRI plugin on, for a client of the CRI API such as
// kubeadm's preflight checks.
func WithCRI() ContainerdOption {
	return func(c *Containerd) { c.cri = true }
}

// StartContainerd starts a private containerd (its own root, state and
// socket; the CRI plugin off) and stops it when the test ends. It runs the
// containerd in $PODSUP_TEST_CONTAINERD_BIN (see BinDir), else the one on
// PATH.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	return StartContainerdFrom(t, BinDir())
}

// StartContainerdFrom is StartContainerd with the containerd, shim and runc
// of binDir ("" for those on PATH), and options.
func StartContainerdFrom(t testing.TB, binDir string, opts ...ContainerdOption) *Containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "a private containerd needs root")
	}
	// The socket path must stay short: unix socket paths are limited.
	dir, err := os.MkdirTemp("/run", "podsup-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{t: t, dir: dir, Address: filepath.Join(dir, "c.sock")}
	for _, o := range opts {
		o(c)
	}
	c.configure(binDir)
	if c.log, err = os.Create(filepath.Join(dir, "containerd.log")); err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() {
		c.purge()
		c.Stop()
		if n := c.killOrphanShims(); n > 0 {
			t.Logf("killed %d shims the private containerd had lost (see DroppedByShimSplit)", n)
		}
		c.log.Close()
		if t.Failed() {
			c.keepLog()
		}
		// Overlay snapshots of stopped containers are mounted no more.
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	return c
}

// configure picks the daemon of binDir and writes a configuration of its
// version for the daemon's directories.
func (c *Containerd) configure(binDir string) {
	c.t.Helper()
	name := "containerd"
	if binDir != "" {
		name = filepath.Join(binDir, name)
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		Unavailable(c.t, "containerd is not installed: %v", err)
	}
	major, err := containerdMajor(bin)
	if err != nil {
		c.t.Fatal(err)
	}
	c.bin, c.binDir, c.Major = bin, binDir, major
	if err := os.WriteFile(filepath.Join(c.dir, "config.toml"), []byte(privateConfig(major, c.dir, c.Address, c.cri)), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// Upgrade stops the daemon and starts the one of binDir on the same root,
// state and socket, as a package upgrade does.
func (c *Containerd) Upgrade(binDir string) {
	c.t.Helper()
	c.Stop()
	c.configure(binDir)
	c.Start()
}

// Start starts the daemon and waits until it answers.
func (c *Containerd) Start() {
	c.t.Helper()
	args := append(slices.Clone(c.prefix), c.bin, "--config", filepath.Join(c.dir, "config.toml"))
	c.cmd = exec.Command(args[0], args[1:]...)
	if c.binDir != "" {
		// The daemon starts the shim it finds on PATH, and the shim the
		// runc it finds there: those beside this containerd, not the
		// host's.
		c.cmd.Env = append(os.Environ(), "PATH="+c.binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	exited := make(chan struct{})
	c.exited = exited
	go func() { // owned by c: ends when the daemon does; Stop waits for it
		c.cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(StartLimit)
	for time.Now().Before(deadline) {
		if c.answers() {
			return
		}
		select {
		case <-exited:
			c.t.Fatalf("private containerd exited as it started (%s); see %s", c.cmd.ProcessState, c.log.Name())
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.t.Fatalf("private containerd did not answer within %s; see %s", StartLimit, c.log.Name())
}

// answers reports whether the daemon answers a version request.
func (c *Containerd) answers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := containerd.New(c.Address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return false
	}
	defer client.Close()
	_, err = client.Version(ctx)
	return err == nil
}

// Stop stops the daemon with SIGTERM, or SIGKILL if it is still there a
// minute later. Shims, and so containers, keep running.
func (c *Containerd) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
}

// Client connects to the private daemon.
func (c *Containerd) Client() *containerd.Client {
	c.t.Helper()
	client, err := containerd.New(c.Address, containerd.WithTimeout(StartLimit))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { client.Close() })
	return client
}

// keepLog copies the daemon's log out of its directory, which is about to
// go, to where the e2e harness keeps podsup's logs of a failed test.
func (c *Containerd) keepLog() {
	data, err := os.ReadFile(c.log.Name())
	if err != nil {
		c.t.Logf("keep the private containerd's log: %v", err)
		return
	}
	dir := filepath.Join(os.TempDir(), "podsup-e2e-failures", strings.ReplaceAll(c.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Logf("keep the private containerd's log: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "containerd.log"), data, 0o644); err != nil {
		c.t.Logf("keep the private containerd's log: %v", err)
		return
	}
	c.t.Logf("private containerd's log kept in %s", filepath.Join(dir, "containerd.log"))
}

// purge removes every namespace's containers so no shim outlives the test.
func (c *Containerd) purge() {
	if c.cmd == nil {
		c.Start()
	}
	client, err := containerd.New(c.Address, containerd.WithTimeout(StartLimit))
	if err != nil {
		c.t.Logf("purge: %v", err)
		return
	}
	defer client.Close()
	nss, _ := client.NamespaceService().List(context.Background())
	for _, ns := range nss {
		if err := Purge(client, ns); err != nil {
			c.t.Logf("purge %s: %v", ns, err)
		}
	}
}

// killOrphanShims kills the shims still serving the stopped daemon once
// purge removed every container it knew: those it lost track of (see
// DroppedByShimSplit), which would otherwise run until the machine
// reboots. It returns how many.
func (c *Containerd) killOrphanShims() int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	killed := 0
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(cmdline), "containerd-shim") {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		i := slices.Index(args, "-address")
		if i < 0 || i+1 >= len(args) || args[i+1] != c.Address {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed
}

// DroppedByShimSplit returns the containers the daemon's log, from offset
// on, says it dropped on a start because their shim did not know them
// ("cleaning leaked shim process" with "container not created"), and the
// log's size now. That is containerd's doing, not its client's: the runc
// shim serves a group of containers (a pod's) from one process, and a shim
// started for a new container of the group that cannot connect to the
// group's socket within 100 ms (containerd's shim.CanConnect, on a loaded
// machine) replaces the socket with its own. The old shim keeps its
// containers but is reached no more; once the daemon restarts it asks the
// new shim about them, is told they do not exist, and deletes them.
func (c *Containerd) DroppedByShimSplit(offset int64) (map[string]bool, int64) {
	data, err := os.ReadFile(c.log.Name())
	if err != nil || int64(len(data)) < offset {
		return nil, offset
	}
	dropped := map[string]bool{}
	for _, line := range strings.Split(string(data[offset:]), "\n") {
		if !strings.Contains(line, "cleaning leaked shim process") || !strings.Contains(line, "container not created") {
			continue
		}
		if _, rest, ok := strings.Cut(line, " id="); ok {
			id, _, _ := strings.Cut(rest, " ")
			dropped[strings.Trim(id, `"`)] = true
		}
	}
	return dropped, int64(len(data))
}

// BinDir is $PODSUP_TEST_CONTAINERD_BIN: a directory holding the containerd,
// containerd-shim-runc-v2 and runc a private containerd runs, such as the
// containerd 2.3 hack/containerd2.sh builds; "" means those on PATH.
func BinDir() string {
	return os.Getenv("PODSUP_TEST_CONTAINERD_BIN")
}

// containerdMajor returns the major version of a containerd binary.
func containerdMajor(bin string) (int, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", bin, err)
	}
	n, err := parseMajor(string(out))
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", bin, err)
	}
	return n, nil
}

// parseMajor reads the major version out of `containerd --version`:
// "containerd github.com/containerd/containerd/v2 v2.3.7 ..." or Debian's
// "containerd github.com/containerd/containerd 1.6.20~ds1 ...".
func parseMajor(version string) (int, error) {
	f := strings.Fields(version)
	if len(f) < 3 {
		return 0, fmt.Errorf("unexpected output %q", version)
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(f[2], "v"), ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("no version in %q", version)
	}
	return n, nil
}

// privateConfig is the config of a private containerd of the given major
// version in dir, serving address.
func privateConfig(major int, dir, address string, cri bool) string {
	paths := fmt.Sprintf(`root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), address, address+".ttrpc")
	if major < 2 {
		if cri {
			return "version = 2\n" + paths
		}
		return "version = 2\n" + `disabled_plugins = ["io.containerd.grpc.v1.cri"]` + "\n" + paths
	}
	// containerd 2 still loads version 2 configs (2.3 migrates 2 and 3 to
	// its own 4), but its CRI is three plugins and the NRI socket, shim
	// sockets and /opt/containerd are shared with every containerd on the
	// host unless set. Runtime options (runc's BinaryName and root) would
	// apply to CRI's containers only; podsup's containers get the shim's
	// defaults, runc from PATH.
	disabled := `disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.nri.v1.nri"]`
	if cri {
		disabled = `disabled_plugins = ["io.containerd.nri.v1.nri"]`
	}
	return "version = 3\n" + disabled + "\n" + paths +
		fmt.Sprintf(`[plugins."io.containerd.shim.v1.manager"]
  socket_dir = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "s"), filepath.Join(dir, "root", "opt"))
}
