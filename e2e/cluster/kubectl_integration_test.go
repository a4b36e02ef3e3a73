//go:build integration

package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"golang.org/x/sys/unix"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/internal/testenv/kube"
)

// shellPod's main container prints what is appended to /tmp/feed, for
// attach and logs -f to see; web serves a page on port 8080.
const shellPod = `apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: %s, command: [sh, -c, 'touch /tmp/feed; exec tail -f /tmp/feed']}
  - {name: web, image: %s, command: [sh, -c, 'mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www']}
`

// TestKubectl: the apiserver reaches podsup as it reaches a kubelet that
// kubeadm set up, at the Node's InternalIP and the port of --address, with
// its kubelet client certificate, which podsup accepts by its
// --client-ca-file and authorizes with a SubjectAccessReview; and a
// kubectl of the apiserver's version execs, attaches, follows logs and
// forwards ports on a static pod's mirror pod through it. Without its
// ClusterRoleBinding to system:kubelet-api-admin, podsup refuses the
// apiserver.
func TestKubectl(t *testing.T) {
	t.Parallel()
	c := kube.Start(t)
	admin := c.Client()
	e := newEnv(t)
	e.Write("shell.yaml", fmt.Sprintf(shellPod, testenv.BusyboxRef, testenv.BusyboxRef))
	// Answers kept a second, so that the binding's removal shows at once.
	e.joinCluster(c, "--node-ip", "127.0.0.1", "--client-ca-file", c.PKI.Path("ca.crt"),
		"--authentication-token-webhook", "--authorization-mode", "Webhook",
		"--authorization-webhook-cache-authorized-ttl", "1s", "--authorization-webhook-cache-unauthorized-ttl", "1s")
	waitKubeletClientAllowed(t, admin, true)
	kubectlLine(t, c, []string{"get", "pods"}, "shell-node1", "2/2", "Running")

	node, err := admin.CoreV1().Nodes().Get(context.Background(), "node1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(e.Secure)
	if got := node.Status.DaemonEndpoints.KubeletEndpoint.Port; strconv.Itoa(int(got)) != port {
		t.Fatalf("node's kubelet endpoint port %d, want %s, that of --address", got, port)
	}

	t.Run("exec with an exit code", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := runKubectl(t, c, nil, &stdout, &stderr, "exec", "shell-node1", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2; exit 5")
		if code != 5 || stdout.String() != "out\n" || !strings.Contains(stderr.String(), "err\n") {
			t.Errorf("exit code %d, stdout %q, stderr %q; want 5, out and err", code, stdout.String(), stderr.String())
		}
	})

	t.Run("exec with stdin", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		const input = "line one\nline two\n"
		code := runKubectl(t, c, strings.NewReader(input), &stdout, &stderr, "exec", "-i", "shell-node1", "-c", "main", "--", "cat")
		if code != 0 || stdout.String() != input {
			t.Errorf("cat: exit code %d, stdout %q, stderr %q; want 0 and the input back", code, stdout.String(), stderr.String())
		}
	})

	t.Run("exec in a terminal", func(t *testing.T) { testKubectlTerminal(t, c) })

	t.Run("attach", func(t *testing.T) {
		feed(t, c, "before-attach")
		kubectlLine(t, c, []string{"logs", "shell-node1", "-c", "main"}, "before-attach")
		attach := startKubectl(t, c, "attach", "shell-node1", "-c", "main")
		n := 0
		harness.WaitUntil(t, "kubectl attach shows a line written after it started", func() string {
			n++
			feed(t, c, fmt.Sprintf("attached-%d", n))
			if !strings.Contains(attach.out.String(), "attached-") {
				return attach.state(t)
			}
			return ""
		})
		if strings.Contains(attach.out.String(), "before-attach") {
			t.Errorf("kubectl attach showed a line written before it: %q", attach.out.String())
		}
	})

	t.Run("logs -f", func(t *testing.T) {
		feed(t, c, "before-follow")
		logs := startKubectl(t, c, "logs", "-f", "shell-node1", "-c", "main")
		harness.WaitUntil(t, "kubectl logs -f shows the log", func() string {
			if !strings.Contains(logs.out.String(), "before-follow") {
				return logs.state(t)
			}
			return ""
		})
		feed(t, c, "followed")
		harness.WaitUntil(t, "kubectl logs -f shows a line written after", func() string {
			if !strings.Contains(logs.out.String(), "followed") {
				return logs.state(t)
			}
			return ""
		})
	})

	t.Run("port-forward", func(t *testing.T) {
		local := testenv.FreePort(t)
		fwd := startKubectl(t, c, "port-forward", "--address", "127.0.0.1", "pod/shell-node1", fmt.Sprintf("%d:8080", local))
		url := fmt.Sprintf("http://127.0.0.1:%d/", local)
		client := &http.Client{Timeout: time.Minute}
		for i := range 3 { // a connection each
			harness.WaitUntil(t, fmt.Sprintf("request %d through kubectl port-forward", i), func() string {
				resp, err := client.Get(url)
				if err != nil {
					return fmt.Sprintf("%v; %s", err, fwd.state(t))
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != 200 || string(body) != "hello from the pod\n" {
					return fmt.Sprintf("%d %q %v", resp.StatusCode, body, err)
				}
				return ""
			})
		}
	})

	t.Run("apiserver not bound to kubelet-api-admin", func(t *testing.T) {
		if err := admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), kube.KubeletClientBinding, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitKubeletClientAllowed(t, admin, false)
		var refusal string
		harness.WaitUntil(t, "podsup refuses the apiserver's exec", func() string {
			var stdout, stderr bytes.Buffer
			code := runKubectl(t, c, nil, &stdout, &stderr, "exec", "shell-node1", "-c", "main", "--", "echo", "ran")
			if refusal = stderr.String(); code == 0 || !strings.Contains(refusal, "user="+kube.KubeletClientUser) || !strings.Contains(refusal, "verb=create") {
				return fmt.Sprintf("exit code %d, stdout %q, stderr %q", code, stdout.String(), refusal)
			}
			return ""
		})
		t.Logf("kubectl exec: %s", refusal)
		out, err := c.Kubectl("logs", "shell-node1", "-c", "main")
		if err == nil || !strings.Contains(err.Error(), "user="+kube.KubeletClientUser) {
			t.Errorf("kubectl logs: %v\n%s", err, out)
		}
		t.Logf("kubectl logs: %v", err)

		if err := kube.BindKubeletClient(context.Background(), admin); err != nil {
			t.Fatal(err)
		}
		waitKubeletClientAllowed(t, admin, true)
		harness.WaitUntil(t, "podsup lets the apiserver exec again", func() string {
			var stdout, stderr bytes.Buffer
			if code := runKubectl(t, c, nil, &stdout, &stderr, "exec", "shell-node1", "-c", "main", "--", "echo", "ran"); code != 0 || stdout.String() != "ran\n" {
				return fmt.Sprintf("exit code %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
			}
			return ""
		})
	})
}

// testKubectlTerminal drives kubectl exec -it through a pseudo-terminal as
// a user at a terminal would: the shell sees the terminal's size and its
// changes, runs what is typed, and its exit code is kubectl's.
func testKubectlTerminal(t *testing.T, c *kube.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), harness.Patience)
	defer cancel()
	ptm, tty := openPTY(t, 37, 91)
	cmd := c.KubectlCommand(ctx, "exec", "-it", "shell-node1", "-c", "main", "--", "sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true} // the terminal is its controlling one, fd 0
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // kubectl's now: the screen ends when kubectl does
	var screen testenv.SyncBuffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(&screen, ptm)
	}()
	// exited is closed when kubectl has ended, waitErr then set; the
	// goroutines are this test's, which waits for them below.
	var waitErr error
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitErr = cmd.Wait()
	}()
	defer func() {
		cancel()
		<-exited
		ptm.Close()
		<-copied
		if t.Failed() {
			t.Logf("the terminal showed:\n%s", screen.String())
		}
	}()
	typeLine := func(line string) {
		t.Helper()
		if _, err := ptm.Write([]byte(line + "\r")); err != nil {
			t.Fatal(err)
		}
	}
	see := func(what string, typing ...string) {
		t.Helper()
		harness.WaitUntil(t, fmt.Sprintf("the terminal shows %q", what), func() string {
			if strings.Contains(screen.String(), what) {
				return ""
			}
			select {
			case <-exited:
				t.Fatalf("kubectl exec -it ended: %v", waitErr)
			default:
			}
			for _, line := range typing {
				typeLine(line)
			}
			return "not yet"
		})
	}

	see("# ") // the shell's prompt
	// $((6*7)) is echoed as typed: 42 comes from the shell.
	typeLine("stty size; echo typed-$((6*7))")
	see("37 91")
	see("typed-42")

	if err := setWinsize(ptm, 50, 120); err != nil {
		t.Fatal(err)
	}
	// The new size travels beside the input, not in it: ask until it
	// arrived.
	see("50 120", "stty size")

	typeLine("exit 3")
	select {
	case <-exited:
		var exit *exec.ExitError
		if !errors.As(waitErr, &exit) || exit.ExitCode() != 3 {
			t.Errorf("kubectl exec -it ended with %v, want exit code 3", waitErr)
		}
	case <-ctx.Done():
		t.Errorf("kubectl exec -it did not end within %s of exit in the shell", harness.Patience)
	}
}

// waitKubeletClientAllowed waits until the apiserver's RBAC allows, or
// refuses, the apiserver's kubelet client what podsup asks for exec.
func waitKubeletClientAllowed(t *testing.T, admin kubernetes.Interface, allowed bool) {
	t.Helper()
	waitRBAC(t, admin, authorizationv1.SubjectAccessReviewSpec{User: kube.KubeletClientUser, Groups: []string{"system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Resource: "nodes", Subresource: "proxy", Name: "node1"}}, allowed)
}

// feed appends a line to what shellPod's main container prints.
func feed(t *testing.T, c *kube.Cluster, line string) {
	t.Helper()
	if _, err := c.Kubectl("exec", "shell-node1", "-c", "main", "--", "sh", "-c", "echo "+line+" >> /tmp/feed"); err != nil {
		t.Fatal(err)
	}
}

// runKubectl runs kubectl as the admin and returns its exit code; one that
// does not end within Patience fails the test.
func runKubectl(t *testing.T, c *kube.Cluster, stdin io.Reader, stdout, stderr io.Writer, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.Patience)
	defer cancel()
	cmd := c.KubectlCommand(ctx, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("kubectl %s: did not end within %s", strings.Join(args, " "), harness.Patience)
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return 0
}

// background is a kubectl that runs until the test ends: attach, logs -f,
// port-forward.
type background struct {
	out, errOut testenv.SyncBuffer
	done        chan struct{} // closed when kubectl has ended, err then set
	err         error
}

func startKubectl(t *testing.T, c *kube.Cluster, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{done: make(chan struct{})}
	cmd := c.KubectlCommand(ctx, args...)
	cmd.Stdout, cmd.Stderr = &b.out, &b.errOut
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { // owned by the test, whose cleanup waits for it
		defer close(b.done)
		b.err = cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		<-b.done
		if t.Failed() {
			t.Logf("kubectl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), b.err, b.out.String(), b.errOut.String())
		}
	})
	return b
}

// state is what kubectl said on stderr while it runs; once it has ended,
// no wait on it can succeed, and state fails the test.
func (b *background) state(t *testing.T) string {
	t.Helper()
	select {
	case <-b.done:
		t.Fatalf("kubectl ended: %v: %s", b.err, b.errOut.String())
	default:
	}
	return "kubectl runs; stderr: " + b.errOut.String()
}

// openPTY opens a pseudo-terminal of rows×cols: its master side, to type
// on and read the screen from, and the terminal a program runs on.
func openPTY(t *testing.T, rows, cols uint16) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close() })
	var n int
	if err := control(ptm, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil { // unlockpt
			return err
		}
		n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN)
		return err
	}); err != nil {
		t.Fatalf("pseudo-terminal: %v", err)
	}
	if err := setWinsize(ptm, rows, cols); err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ptm, tty
}

// setWinsize sets a terminal's size; its foreground process gets SIGWINCH.
func setWinsize(ptm *os.File, rows, cols uint16) error {
	return control(ptm, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
}

// control calls fn with f's descriptor without putting it in blocking mode
// as Fd would, so that Close still ends a Read in progress.
func control(f *os.File, fn func(fd int) error) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
