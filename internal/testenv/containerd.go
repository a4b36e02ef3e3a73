package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	Address string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd has exited
	log     *os.File
}

// StartContainerd starts a private containerd (its own root, state and
// socket; the CRI plugin off) and stops it when the test ends.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "a private containerd needs root")
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		Unavailable(t, "containerd is not installed")
	}
	// The socket path must stay short: unix socket paths are limited.
	dir, err := os.MkdirTemp("/run", "podsup-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{t: t, dir: dir, Address: filepath.Join(dir, "c.sock")}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Address, c.Address+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.log, err = os.Create(filepath.Join(dir, "containerd.log")); err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() {
		c.purge()
		c.Stop()
		c.log.Close()
		// Overlay snapshots of stopped containers are mounted no more.
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	return c
}

// Start starts the daemon and waits until it answers.
func (c *Containerd) Start() {
	c.t.Helper()
	c.cmd = exec.Command("containerd", "--config", filepath.Join(c.dir, "config.toml"))
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
