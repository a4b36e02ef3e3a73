//go:build integration

package cluster

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv/kube"
)

// bootstrapToken sets up what `kubeadm init` leaves for `kubeadm join`: a
// bootstrap token of the group kubeadm uses, allowed to create
// CertificateSigningRequests, and a bootstrap kubeconfig with it.
func bootstrapToken(t *testing.T, c *kube.Cluster, admin kubernetes.Interface, dir string) string {
	t.Helper()
	ctx := context.Background()
	const group = "system:bootstrappers:kubeadm:default-node-token"
	secret := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-abcdef", Namespace: "kube-system"},
		Type: "bootstrap.kubernetes.io/token",
		StringData: map[string]string{"token-id": "abcdef", "token-secret": "0123456789abcdef",
			"usage-bootstrap-authentication": "true", "auth-extra-groups": group}}
	if _, err := admin.CoreV1().Secrets("kube-system").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:kubelet-bootstrap"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:node-bootstrapper"},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: group}}}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(c.PKI.Path("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bootstrap-kubelet.conf")
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- {name: test, cluster: {server: %q, certificate-authority-data: %q}}
users:
- {name: tls-bootstrap-token-user, user: {token: abcdef.0123456789abcdef}}
contexts:
- {name: test, context: {cluster: test, user: tls-bootstrap-token-user}}
current-context: test
`, c.Server, base64.StdEncoding.EncodeToString(ca))
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// signer approves and signs every CertificateSigningRequest of the
// kubelet client signer with the cluster's CA, until the test ends. The
// test's apiserver runs without a controller-manager, which would do both
// (it approves the node's requests made with a bootstrap token or its own
// certificate). lifetime says how long the nth certificate lasts.
type signer struct {
	mu        sync.Mutex
	requests  []certificatesv1.CertificateSigningRequest // as signed
	certs     [][]byte
	lifetimes func(n int) time.Duration
}

func startSigner(t *testing.T, c *kube.Cluster, admin kubernetes.Interface, lifetimes func(n int) time.Duration) *signer {
	s := &signer{lifetimes: lifetimes}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := s.signPending(ctx, c, admin); err != nil && ctx.Err() == nil {
				t.Logf("signer: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *signer) signPending(ctx context.Context, c *kube.Cluster, admin kubernetes.Interface) error {
	csrs := admin.CertificatesV1().CertificateSigningRequests()
	list, err := csrs.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, csr := range list.Items {
		if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName || len(csr.Status.Conditions) > 0 {
			continue
		}
		csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateApproved, Status: v1.ConditionTrue, Reason: "TestApproved", Message: "approved by the test, standing in for the controller-manager"})
		approved, err := csrs.UpdateApproval(ctx, csr.Name, &csr, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("approve %s: %w", csr.Name, err)
		}
		s.mu.Lock()
		n := len(s.requests)
		s.mu.Unlock()
		cert, err := c.PKI.SignCSR(csr.Spec.Request, s.lifetimes(n))
		if err != nil {
			return fmt.Errorf("sign %s: %w", csr.Name, err)
		}
		approved.Status.Certificate = cert
		if _, err := csrs.UpdateStatus(ctx, approved, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("sign %s: %w", csr.Name, err)
		}
		s.mu.Lock()
		s.requests, s.certs = append(s.requests, csr), append(s.certs, cert)
		s.mu.Unlock()
	}
	return nil
}

func (s *signer) signed() ([]certificatesv1.CertificateSigningRequest, [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]certificatesv1.CertificateSigningRequest(nil), s.requests...), append([][]byte(nil), s.certs...)
}

// currentCert is the certificate kubelet-client-current.pem holds.
func currentCert(t *testing.T, certDir string) (*x509.Certificate, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(certDir, "kubelet-client-current.pem"))
	if err != nil {
		return nil, err
	}
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
	return nil, fmt.Errorf("no certificate in kubelet-client-current.pem")
}

// TestBootstrapTLS: podsup started with only a bootstrap kubeconfig (a
// bootstrap token, as kubeadm join gives) requests its client certificate,
// lays it out as the kubelet, writes a kubeconfig that works, and joins
// the cluster under its own name; the certificate is renewed, with the
// node's own certificate, before it expires, and the Node keeps being
// updated after the first certificate expired, its pods untouched.
func TestBootstrapTLS(t *testing.T) {
	t.Parallel()
	c := kube.Start(t)
	admin := c.Client()
	e := newEnv(t)
	bootstrap := bootstrapToken(t, c, admin, t.TempDir())
	// The first certificate lasts 90 s, so podsup renews it within about
	// a minute; the next ones an hour.
	const short = 90 * time.Second
	s := startSigner(t, c, admin, func(n int) time.Duration {
		if n == 0 {
			return short
		}
		return time.Hour
	})
	e.Write("web.yaml", harness.SleeperPod("web", "while true; do sleep 1; done"))
	kubeconfig := filepath.Join(e.Root, "kubelet.conf")
	certDir := filepath.Join(e.Root, "pki")
	e.Start("--kubeconfig", kubeconfig, "--bootstrap-kubeconfig", bootstrap, "--node-status-update-frequency", "1s")

	t.Log("podsup requests its certificate with the token and joins as system:node:node1")
	kubectlLine(t, c, []string{"get", "nodes"}, "node1", "Ready")
	pods := kubectlLine(t, c, []string{"get", "pods", "-A"}, "default", "web-node1", "2/2", "Running")
	t.Logf("kubectl get pods -A:\n%s", pods)
	requests, _ := s.signed()
	if len(requests) != 1 || requests[0].Spec.Username != "system:bootstrap:abcdef" {
		t.Fatalf("signed requests %+v, want one of system:bootstrap:abcdef", requests)
	}
	first, err := currentCert(t, certDir)
	if err != nil {
		t.Fatal(err)
	}
	if first.Subject.CommonName != "system:node:node1" || len(first.Subject.Organization) != 1 || first.Subject.Organization[0] != "system:nodes" {
		t.Errorf("kubelet-client-current.pem is for %s", first.Subject)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	node, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Nodes().Get(context.Background(), "node1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the kubeconfig podsup wrote does not work: %v", err)
	}
	t.Logf("the kubeconfig podsup wrote reads Node %s as %s", node.Name, first.Subject.CommonName)
	ids := harness.ContainerIDs(e.Pod("web"))

	t.Log("podsup renews its certificate with its own, before the first expires")
	harness.WaitFor(t, "a renewed client certificate", func() bool {
		cert, err := currentCert(t, certDir)
		return err == nil && cert.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	requests, _ = s.signed()
	if len(requests) < 2 || requests[1].Spec.Username != "system:node:node1" {
		t.Errorf("second request by %q, want system:node:node1", requests[len(requests)-1].Spec.Username)
	}
	files, _ := filepath.Glob(filepath.Join(certDir, "kubelet-client-2*.pem"))
	if len(files) < 2 {
		t.Errorf("cert dir has %v, want a kubelet-client-<time>.pem per certificate", files)
	}

	t.Log("after the first certificate expired, podsup still renews its Lease")
	expired := first.NotAfter
	harness.WaitFor(t, "the Lease renewed after the first certificate expired", func() bool {
		lease, err := admin.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), "node1", metav1.GetOptions{})
		return err == nil && renewedAfter(lease, expired)
	})
	waitMirror(t, admin, "default", "web-node1", func(m *v1.Pod) error {
		if m.Status.Phase != v1.PodRunning {
			return fmt.Errorf("phase %s", m.Status.Phase)
		}
		return nil
	})
	if now := harness.ContainerIDs(e.Pod("web")); now != ids {
		t.Errorf("the rotation restarted the pod: containers %s, then %s", ids, now)
	}
}

func renewedAfter(lease *coordinationv1.Lease, t time.Time) bool {
	return lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(t)
}
