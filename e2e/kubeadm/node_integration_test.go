//go:build integration

package kubeadm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/internal/testenv/kube"
)

// kubeadmLimit bounds kubeadm's own waits (set in its configurations) and
// the test's waits on the control plane: four programs start from images
// of a hundred megabytes on a machine whose two cores may be busy.
const kubeadmLimit = 10 * time.Minute

// importImages builds the images `kubeadm config images list` names from
// the programs of bins and imports them into each containerd namespace of
// nss: the CRI's (k8s.io), where kubeadm's preflight looks for them, and
// the nodes' podsup namespaces, where podsup runs them. pause is podsup's
// own pause under kubeadm's name.
func importImages(t *testing.T, ctrd *testenv.Containerd, bins kube.KubeadmBinaries, list string, nss ...string) {
	t.Helper()
	client := ctrd.Client()
	programs := map[string]string{"kube-apiserver": bins.APIServer, "kube-controller-manager": bins.ControllerManager,
		"kube-scheduler": bins.Scheduler, "etcd": bins.Etcd}
	for _, ref := range strings.Fields(list) {
		name, _, _ := strings.Cut(filepath.Base(ref), ":")
		var b *image.Build
		if name == "pause" {
			var err error
			if b, err = image.PauseImage(); err != nil {
				t.Fatal(err)
			}
		} else {
			bin, ok := programs[name]
			if !ok {
				t.Fatalf("kubeadm config images list names %s, which the test does not build", ref)
			}
			data, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			// The programs are static: the binary is the image, with
			// /tmp for the Go runtime and PATH for kubeadm's commands
			// ("kube-apiserver", "etcd").
			b = &image.Build{Files: []image.File{{Path: "/usr/local/bin/" + name, Mode: 0o755, Data: data}, {Path: "/tmp", Mode: os.ModeDir | 0o1777}},
				Config: ocispec.ImageConfig{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}}
		}
		b.Ref = ref
		for _, ns := range nss {
			if _, err := b.Import(namespaces.WithNamespace(context.Background(), ns), client, testenv.Snapshotter); err != nil {
				t.Fatalf("import %s into %s: %v", ref, ns, err)
			}
		}
	}
}

// node is a podsup that kubeadm set up as it sets up a kubelet: run as
// kubeadm's systemd drop-in for the kubelet runs it, once kubeadm wrote
// /var/lib/kubelet/config.yaml and kubeadm-flags.env.
type node struct {
	t          *testing.T
	name       string
	enter      []string // how to get into the node's namespaces
	kubeletDir string   // its /var/lib/kubelet, on the host
	ns         string   // its containerd namespace
	root       string
	logs       string
	socket     string
	proc       *exec.Cmd
	log        *os.File
}

// newNode is a node whose namespaces enter gets into and whose
// /var/lib/kubelet is kubeletDir on the host; start runs its podsup.
func newNode(t *testing.T, name string, enter []string, kubeletDir string) *node {
	t.Helper()
	sock, err := os.MkdirTemp("", "psk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	n := &node{t: t, name: name, enter: enter, kubeletDir: kubeletDir, ns: "podsup-kubeadm-" + randomHex(4),
		root: t.TempDir(), logs: t.TempDir(), socket: filepath.Join(sock, "podsup.sock")}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(n.root, "podsup.log"))
			t.Logf("== podsup of %s:\n%s", name, data[max(0, len(data)-6000):])
		}
	})
	return n
}

// kubeadmArgs are the kubelet flags kubeadm wrote into kubeadm-flags.env
// (KUBELET_KUBEADM_ARGS), which the kubelet's drop-in passes on.
func (n *node) kubeadmArgs() []string {
	n.t.Helper()
	data, err := os.ReadFile(filepath.Join(n.kubeletDir, "kubeadm-flags.env"))
	if err != nil {
		n.t.Fatal(err)
	}
	_, value, ok := strings.Cut(strings.TrimSpace(string(data)), "KUBELET_KUBEADM_ARGS=")
	if !ok {
		n.t.Fatalf("kubeadm-flags.env has no KUBELET_KUBEADM_ARGS: %s", data)
	}
	// systemd splits the unquoted $KUBELET_KUBEADM_ARGS at whitespace;
	// kubeadm joins the flags with spaces and quotes none.
	return strings.Fields(strings.Trim(value, `"`))
}

// start runs podsup with the kubelet's flags of kubeadm's drop-in, then
// those that keep the test's podsup off the host's state.
func (n *node) start() {
	n.t.Helper()
	cni := n.t.TempDir() // no configuration: podsup's own bridge, in the box's network
	args := []string{harness.Binary(), "run",
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml", "--cert-dir=/var/lib/kubelet/pki"}
	args = append(args, n.kubeadmArgs()...)
	args = append(args, "--root-dir", n.root, "--log-dir", n.logs, "--admin-socket", n.socket,
		"--containerd-namespace", n.ns, "--cni-conf-dir", cni, "-v", "1")
	args = append(slices.Clone(n.enter), args...)
	var err error
	if n.log, err = os.Create(filepath.Join(n.root, "podsup.log")); err != nil {
		n.t.Fatal(err)
	}
	n.proc = exec.Command(args[0], args[1:]...)
	n.proc.Stdout, n.proc.Stderr = n.log, n.log
	n.proc.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.proc.Start(); err != nil {
		n.t.Fatalf("start podsup of %s: %v", n.name, err)
	}
}

// stop stops podsup as a service manager does.
func (n *node) stop() {
	if n.proc == nil {
		return
	}
	n.proc.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { n.proc.Wait(); close(done) }() // ends when podsup does; Kill below makes sure
	select {
	case <-done:
	case <-time.After(harness.Patience):
		n.t.Errorf("podsup of %s did not stop within %s of SIGTERM", n.name, harness.Patience)
		n.proc.Process.Kill()
		<-done
	}
	n.log.Close()
	n.proc = nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// waitFile waits until kubeadm, running as proc, wrote path, and fails if
// kubeadm ended first.
func waitFile(t *testing.T, kubeadm *background, path string) {
	t.Helper()
	if _, ok := testenv.Poll(kubeadmLimit, func() bool {
		_, err := os.Stat(path)
		return err == nil || kubeadm.done()
	}); !ok {
		t.Fatalf("kubeadm wrote no %s within %s:\n%s", path, kubeadmLimit, kubeadm.output())
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("kubeadm ended without writing %s: %v\n%s", path, kubeadm.wait(), kubeadm.output())
	}
}

// background is a command run in the background with its output kept.
type background struct {
	cmd    *exec.Cmd
	out    *os.File
	exited chan struct{}
	err    error
}

func startBackground(t *testing.T, args []string) *background {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	bg := &background{cmd: exec.Command(args[0], args[1:]...), out: out, exited: make(chan struct{})}
	bg.cmd.Stdout, bg.cmd.Stderr = out, out
	bg.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := bg.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() { bg.err = bg.cmd.Wait(); close(bg.exited) }() // owned by bg: ends with the command
	t.Cleanup(func() {
		if !bg.done() {
			bg.cmd.Process.Kill()
			<-bg.exited
		}
		out.Close()
	})
	return bg
}

func (bg *background) done() bool {
	select {
	case <-bg.exited:
		return true
	default:
		return false
	}
}

// wait waits for the command, up to kubeadmLimit, and returns its error.
func (bg *background) wait() error {
	select {
	case <-bg.exited:
		return bg.err
	case <-time.After(kubeadmLimit):
		return fmt.Errorf("still running after %s", kubeadmLimit)
	}
}

func (bg *background) output() string {
	data, _ := os.ReadFile(bg.out.Name())
	return string(data)
}
