//go:build integration

package kubeadm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/internal/testenv/kube"
)

// upgradeMark is the annotation the upgrade's patches add to every static
// pod of the control plane, so that kubeadm writes new manifests at the
// same version and waits for their new config hashes.
const upgradeMark = "podsup.test/upgraded"

// upgradeApply runs kubeadm upgrade apply to the cluster's own version
// with patches that change each control-plane manifest: kubeadm waits, for
// each component in turn, until the mirror pod's kubernetes.io/config.hash
// changes, which podsup publishes from the manifest it runs.
func (c *cluster) upgradeApply(t *testing.T) {
	before := hashes(c.waitControlPlane(nil, time.Time{}))
	patches := filepath.Join(c.dir, "patches")
	for _, comp := range controlPlane {
		c.write(filepath.Join("patches", comp+"+strategic.yaml"), fmt.Sprintf("metadata:\n  annotations:\n    %s: %q\n", upgradeMark, "1"))
	}
	cfg := c.write("upgrade.yaml", fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: UpgradeConfiguration
apply:
  kubernetesVersion: %[1]s
  ignorePreflightErrors: [%[2]s]
  patches:
    directory: %[3]s
timeouts:
  controlPlaneComponentHealthCheck: %[4]s
  upgradeManifests: %[4]s
`, kube.Version, upgradeIgnoredChecks, patches, kubeadmLimit))
	ctx, cancel := context.WithTimeout(context.Background(), 3*kubeadmLimit)
	defer cancel()
	out, err := c.box.run(ctx, c.bins.Kubeadm, "upgrade", "apply", "--config", cfg, "--yes", "--v=1")
	if err != nil {
		t.Fatalf("kubeadm upgrade apply: %v\n%s", err, out)
	}
	t.Logf("kubeadm upgrade apply:\n%s", out)
	for _, comp := range controlPlane {
		if want := fmt.Sprintf("Component %q upgraded successfully", comp); !strings.Contains(out, want) {
			t.Errorf("kubeadm upgrade apply did not say %s", want)
		}
	}
	after := c.waitControlPlane(before, time.Time{})
	for _, comp := range controlPlane {
		p := after[comp]
		if p.Annotations[upgradeMark] != "1" {
			t.Errorf("mirror pod %s lacks the patch's annotation: %v", p.Name, p.Annotations)
		}
		t.Logf("%s: config hash %s -> %s", comp, before[comp], p.Annotations[configHash])
	}
}

// certsRenew runs kubeadm certs renew all, then restarts the control plane
// as kubeadm's documentation says: the manifests move out of
// /etc/kubernetes/manifests until the kubelet (here podsup) stopped the
// static pods, then back. The apiserver then serves the renewed
// certificate and every component runs a container started after the
// renewal.
func (c *cluster) certsRenew(t *testing.T) {
	old, err := c.box.servingCert(advertiseAddress + ":6443")
	if err != nil {
		t.Fatal(err)
	}
	renewStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), kubeadmLimit)
	defer cancel()
	out, err := c.box.run(ctx, c.bins.Kubeadm, "certs", "renew", "all")
	if err != nil {
		t.Fatalf("kubeadm certs renew all: %v\n%s", err, out)
	}
	t.Logf("kubeadm certs renew all:\n%s", out)
	renewed := readCert(t, filepath.Join(c.box.etc(), "kubernetes", "pki", "apiserver.crt"))
	if renewed.Equal(old) {
		t.Fatal("kubeadm certs renew all left apiserver.crt as it was")
	}
	// The apiserver reloads its serving certificate from the file by
	// itself; etcd's, and the kubeconfigs of the controller manager and
	// the scheduler, are read at start only: hence the restart.

	// The moves run in the box, as a user runs them: /etc is an overlay
	// there, whose upper directory must not change behind its back.
	if out, err := c.box.run(context.Background(), "sh", "-ec", "mkdir -p /etc/kubernetes/manifests-off && mv /etc/kubernetes/manifests/*.yaml /etc/kubernetes/manifests-off/"); err != nil {
		t.Fatalf("move the manifests out: %v\n%s", err, out)
	}
	c.waitUntil(t, "podsup stopped the static pods whose manifests left /etc/kubernetes/manifests", func() string {
		pods, err := c.cp.pods()
		if err != nil {
			return err.Error()
		}
		if len(pods) > 0 {
			return fmt.Sprintf("%d pods still there", len(pods))
		}
		return ""
	})
	if out, err := c.box.run(context.Background(), "sh", "-ec", "mv /etc/kubernetes/manifests-off/*.yaml /etc/kubernetes/manifests/"); err != nil {
		t.Fatalf("move the manifests back: %v\n%s", err, out)
	}
	c.waitControlPlane(nil, renewStart.Truncate(time.Second))
	var serving *x509.Certificate
	c.waitUntil(t, "the apiserver serving the renewed certificate", func() string {
		if serving, err = c.box.servingCert(advertiseAddress + ":6443"); err != nil {
			return err.Error()
		}
		if !serving.Equal(renewed) {
			return fmt.Sprintf("serving serial %s, not the renewed %s", serving.SerialNumber, renewed.SerialNumber)
		}
		return ""
	})
	// kubeadm backdates a renewed certificate by five minutes.
	if !serving.NotBefore.After(old.NotBefore) || serving.NotBefore.Before(renewStart.Add(-5*time.Minute-time.Second)) {
		t.Errorf("serving certificate valid from %s; the old one from %s, the renewal started %s", serving.NotBefore, old.NotBefore, renewStart)
	}
	t.Logf("apiserver serving certificate: serial %s valid from %s (was %s from %s)", serving.SerialNumber, serving.NotBefore, old.SerialNumber, old.NotBefore)
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cert
}

// servingCert is the certificate a TLS server in the box presents at addr.
func (b *box) servingCert(addr string) (*x509.Certificate, error) {
	conn, err := b.dial(addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) // only read, not trusted
	tc.SetDeadline(time.Now().Add(time.Minute))
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc.ConnectionState().PeerCertificates[0], nil
}

// dial connects to addr in the box's network namespace, from a thread
// that enters it for the dial and returns to the test's namespace before
// it runs other goroutines again. The thread must not end in the box:
// a thread that ends sends the Pdeathsig of the processes it started
// (podsup, kubeadm) to them.
func (b *box) dial(addr string) (net.Conn, error) {
	target, err := os.Open("/proc/" + b.pid + "/ns/net")
	if err != nil {
		return nil, err
	}
	defer target.Close()
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("enter the box's network: %w", err)}
			return
		}
		conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stuck in the box: the thread stays locked and ends
			// with the goroutine.
			ch <- result{nil, fmt.Errorf("leave the box's network: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// pods are the pods podsup runs, from its admin socket.
func (n *node) pods() ([]v1.Pod, error) {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", n.socket)
		}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://podsup/pods")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list v1.PodList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("GET /pods: %w", err)
	}
	return list.Items, nil
}

// join joins a second podsup node with kubeadm join: a worker of its own
// /etc/kubernetes and /var/lib/kubelet (a mount namespace nested in the
// box's), root directory, containerd namespace and ports, on the box's
// network and containerd. Its kubelet ports come from a kubeadm patch of
// its KubeletConfiguration, so that kubeadm's wait for the kubelet's
// healthz asks this node's podsup, not the control plane's.
func (c *cluster) join(t *testing.T) {
	token, err := c.box.run(context.Background(), c.bins.Kubeadm, "token", "create")
	if err != nil {
		t.Fatal(err)
	}
	token = strings.TrimSpace(token)
	ca := readCert(t, filepath.Join(c.box.etc(), "kubernetes", "pki", "ca.crt"))
	hash := caCertHash(ca)

	dir := t.TempDir()
	etc, kubelet := filepath.Join(dir, "etc-kubernetes"), filepath.Join(dir, "kubelet")
	for _, d := range []string{etc, kubelet} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A second holder, in the box's namespaces, that makes a mount
	// namespace of its own with the worker's directories bound over the
	// control plane's.
	holder := startBackground(t, c.box.enter("unshare", "--mount", "--propagation", "private", "sh", "-ec",
		fmt.Sprintf("mount --bind %s /etc/kubernetes && mount --bind %s /var/lib/kubelet && exec sleep infinity", etc, kubelet)))
	var pid string
	c.waitUntil(t, "the worker's mount namespace", func() string {
		pid = fmt.Sprint(holder.cmd.Process.Pid)
		comm, err := os.ReadFile("/proc/" + pid + "/comm")
		if err != nil {
			return err.Error()
		}
		// nsenter execs unshare, which execs sh, which execs sleep
		// once the binds are made.
		if strings.TrimSpace(string(comm)) != "sleep" {
			return "still " + strings.TrimSpace(string(comm))
		}
		return ""
	})
	enter := []string{"nsenter", "--target", pid, "--mount", "--net", "--"}

	const healthzPort, port = 10258, 10260
	patches := filepath.Join(dir, "patches")
	if err := os.Mkdir(patches, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(patches, "kubeletconfiguration+strategic.yaml"),
		[]byte(fmt.Sprintf("healthzPort: %d\nport: %d\n", healthzPort, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	const name = "worker1"
	cfg := c.write("join.yaml", fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %[1]s:6443
    token: %[2]s
    caCertHashes: [%[3]s]
nodeRegistration:
  name: %[4]s
  criSocket: unix://%[5]s
  ignorePreflightErrors: [%[6]s]
  kubeletExtraArgs:
  - name: node-ip
    value: %[1]s
patches:
  directory: %[7]s
timeouts:
  kubeletHealthCheck: %[8]s
  tlsBootstrap: %[8]s
`, advertiseAddress, token, hash, name, c.ctrd.Address, joinIgnoredChecks, patches, kubeadmLimit))

	worker := newNode(t, name, enter, kubelet)
	kubeadm := startBackground(t, append(slices.Clone(enter), c.bins.Kubeadm, "join", "--config", cfg, "--v=1"))
	waitFile(t, kubeadm, filepath.Join(kubelet, "config.yaml"))
	worker.start()
	if err := kubeadm.wait(); err != nil {
		t.Fatalf("kubeadm join: %v\n%s", err, kubeadm.output())
	}
	t.Logf("kubeadm join:\n%s", kubeadm.output())
	c.waitNodeReady(name)
	// The node's client certificate came from the TLS bootstrap: podsup
	// requested it with the bootstrap token and wrote kubelet.conf.
	kubeconfig, err := os.ReadFile(filepath.Join(etc, "kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(kubeconfig, []byte("/var/lib/kubelet/pki/kubelet-client-current.pem")) {
		t.Errorf("the worker's kubelet.conf does not name the bootstrapped certificate:\n%s", kubeconfig)
	}
	nodes, err := c.kubectl("get", "nodes", "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get nodes:\n%s", nodes)
}

// upgradeIgnoredChecks: SystemVerification runs `kubelet --version`, as in
// init; CoreDNSUnsupportedPlugins and CoreDNSMigration read the version of
// the CoreDNS Deployment, which the disabled addon never made (kubeadm
// upgrade apply runs them whether the addon is disabled or not); CreateJob
// checks the cluster's health with a Job whose pod the scheduler binds to
// a node, and podsup runs static pods only.
const upgradeIgnoredChecks = "SystemVerification,CoreDNSUnsupportedPlugins,CoreDNSMigration,CreateJob"

// joinIgnoredChecks: KubeletVersion, as for init; Port-10250, which the
// control plane's podsup holds in the network the two nodes share (the
// worker's podsup listens on the port of its patched configuration).
const joinIgnoredChecks = ignoredChecks + ",Port-10250"

// caCertHash is the --discovery-token-ca-cert-hash of a CA: the SHA-256
// of its public key.
func caCertHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}
