package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/podsup/podsup/volume"
)

// benchContainerd is a containerd 2 of the benchmark's own, started from
// the binaries hack/containerd2.sh builds, with its own root, state, socket,
// shim socket directory and runc root: its CRI plugin needs a CNI
// configuration directory and a sandbox image of the benchmark's choosing,
// which the daemon the tests share must not be given.
type benchContainerd struct {
	dir     string // root of everything the instance keeps on disk
	run     string // its sockets and state
	address string
	cmd     *exec.Cmd
	exited  chan struct{} // closed by the goroutine that waits for cmd
}

// containerdBin is where hack/containerd2.sh puts containerd 2.
func containerdBin() (string, error) {
	out, err := exec.Command("bash", "hack/containerd2.sh", "build").Output()
	if err != nil {
		return "", fmt.Errorf("hack/containerd2.sh build: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// startContainerd starts a containerd 2 whose CRI plugin reads networks from
// cniDir and uses sandboxImage as the pods' pause image.
func startContainerd(cniDir, sandboxImage string) (*benchContainerd, error) {
	bin, err := containerdBin()
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%06x", rand.IntN(1<<24))
	c := &benchContainerd{
		dir: filepath.Join("/var/lib/podsup-bench", id),
		run: filepath.Join("/run/podsup-bench", id),
	}
	c.address = filepath.Join(c.run, "containerd.sock")
	for _, d := range []string{c.dir, c.run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	config := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "%[2]s/s"

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %[4]q

# This host withholds CAP_SYS_RESOURCE, without which runc cannot lower
# the sandboxes' oom_score_adj to the kubelet's -998: keep it at or above
# containerd's own, as for rootless containerd.
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  BinaryName = "%[5]s/runc"
  Root = "%[2]s/runc"

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = %[6]q
`, c.dir, c.run, c.address, sandboxImage, bin, cniDir)
	confFile := filepath.Join(c.run, "config.toml")
	if err := os.WriteFile(confFile, []byte(config), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(c.dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	c.cmd = exec.Command(filepath.Join(bin, "containerd"), "--config", confFile)
	// The daemon starts the shim it finds on its PATH, and the shim the
	// runc it finds on its own: the built ones, not Debian's.
	c.cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	c.exited = make(chan struct{})
	go func() {
		c.cmd.Wait()
		close(c.exited)
	}()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		client, err := containerd.New(c.address, containerd.WithTimeout(time.Second))
		if err == nil {
			_, err = client.Version(context.Background())
			client.Close()
			if err == nil {
				return c, nil
			}
		}
		select {
		case <-c.exited:
			c.stop()
			return nil, fmt.Errorf("containerd exited; see %s", logFile.Name())
		default:
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("containerd at %s did not answer within a minute: %w", c.address, err)
		}
	}
}

// stop ends the daemon and removes everything it kept, unmounting what is
// still mounted under its directories.
func (c *benchContainerd) stop() {
	if c.exited != nil {
		select {
		case <-c.exited:
			// It ended before it was asked to: its log, which goes with
			// its directory, says why.
			kept := filepath.Join(os.TempDir(), fmt.Sprintf("podsup-bench-containerd-%d.log", os.Getpid()))
			if data, err := os.ReadFile(filepath.Join(c.dir, "containerd.log")); err == nil && os.WriteFile(kept, data, 0o644) == nil {
				fmt.Fprintf(os.Stderr, "bench: containerd exited before the end (%v); its log is in %s\n", c.cmd.ProcessState, kept)
			}
		default:
		}
	}
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
	for _, d := range []string{c.run, c.dir} {
		if err := volume.RemoveAll(d); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	for _, d := range []string{"/run/podsup-bench", "/var/lib/podsup-bench"} {
		os.Remove(d) // only if no other bench uses it
	}
}
