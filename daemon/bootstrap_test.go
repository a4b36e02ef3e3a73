package daemon

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/internal/testpki"
)

// signingCluster is a fake apiserver whose CertificateSigningRequests are
// approved and signed by ca as they are created, as the controller-manager
// does for bootstrap tokens.
type signingCluster struct {
	*fake.Clientset
	mu   sync.Mutex
	csrs []*certificatesv1.CertificateSigningRequest // as created
}

func newSigningCluster(t *testing.T, ca *testpki.CA) *signingCluster {
	c := &signingCluster{Clientset: fake.NewClientset()}
	c.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		csr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.CertificateSigningRequest)
		c.mu.Lock()
		c.csrs = append(c.csrs, csr.DeepCopy())
		csr.Name = fmt.Sprintf("csr-%d", len(c.csrs))
		c.mu.Unlock()
		csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{
			Type: certificatesv1.CertificateApproved, Status: v1.ConditionTrue, Reason: "AutoApproved"}}
		csr.Status.Certificate = ca.SignCSR(t, csr.Spec.Request, time.Hour)
		return false, nil, nil // the tracker stores it
	})
	return c
}

func (c *signingCluster) created() []*certificatesv1.CertificateSigningRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.csrs)
}

// bootstrapFixture is a node's files: a bootstrap kubeconfig with a
// token, and where --kubeconfig and --cert-dir go.
type bootstrapFixture struct {
	ca                             *testpki.CA
	kubeconfig, bootstrap, certDir string
	cluster                        *signingCluster
	clock                          *clocktesting.FakeClock
	clientConfigs                  []*rest.Config
	mu                             sync.Mutex
}

func newBootstrapFixture(t *testing.T) *bootstrapFixture {
	dir := t.TempDir()
	f := &bootstrapFixture{ca: testpki.NewCA(t, "kubernetes"), kubeconfig: filepath.Join(dir, "kubelet.conf"),
		bootstrap: filepath.Join(dir, "bootstrap-kubelet.conf"), certDir: filepath.Join(dir, "pki"),
		clock: clocktesting.NewFakeClock(time.Now())}
	f.cluster = newSigningCluster(t, f.ca)
	writeTestKubeconfig(t, f.bootstrap, f.ca, &clientcmdapi.AuthInfo{Token: "abcdef.0123456789abcdef"})
	return f
}

func writeTestKubeconfig(t *testing.T, path string, ca *testpki.CA, auth *clientcmdapi.AuthInfo) {
	t.Helper()
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"c": {Server: "https://127.0.0.1:6443", CertificateAuthorityData: ca.PEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"u": auth},
		Contexts:       map[string]*clientcmdapi.Context{"x": {Cluster: "c", AuthInfo: "u"}},
		CurrentContext: "x",
	}
	if err := clientcmd.WriteToFile(kc, path); err != nil {
		t.Fatal(err)
	}
}

func (f *bootstrapFixture) client(t *testing.T) *kubeClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b := certBootstrap{kubeconfig: f.kubeconfig, bootstrapKubeconfig: f.bootstrap, certDir: f.certDir, nodeName: "node1",
		log: slog.New(slog.DiscardHandler), clock: f.clock,
		newClient: func(cfg *rest.Config) (kubernetes.Interface, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.clientConfigs = append(f.clientConfigs, cfg)
			return f.cluster, nil
		}}
	k, err := b.client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k.start()
	return k
}

// waitIssued waits for the client's first certificate; the limit only
// ends a test that would otherwise hang.
func waitIssued(t *testing.T, k *kubeClient) {
	t.Helper()
	select {
	case <-k.ready:
	case <-time.After(time.Minute):
		t.Fatal("no client certificate after a minute")
	}
}

// checkBootstrapped checks what a bootstrap leaves: one CSR of the
// kubelet's form, the certificate in --cert-dir as the kubelet lays it
// out, and --kubeconfig pointing at it.
func checkBootstrapped(t *testing.T, f *bootstrapFixture) {
	t.Helper()
	csrs := f.cluster.created()
	if len(csrs) != 1 {
		t.Fatalf("%d CertificateSigningRequests, want 1", len(csrs))
	}
	spec := csrs[0].Spec
	if spec.SignerName != "kubernetes.io/kube-apiserver-client-kubelet" {
		t.Errorf("signer %q", spec.SignerName)
	}
	if !slices.Equal(spec.Usages, []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}) {
		t.Errorf("usages %v", spec.Usages)
	}
	block, _ := pem.Decode(spec.Request)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if req.Subject.CommonName != "system:node:node1" || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("request for %s", req.Subject)
	}
	if req.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key %s, want ECDSA", req.PublicKeyAlgorithm)
	}

	current := filepath.Join(f.certDir, "kubelet-client-current.pem")
	target, err := os.Readlink(current)
	if err != nil {
		t.Fatalf("%s: %v", current, err)
	}
	if base := filepath.Base(target); !strings.HasPrefix(base, "kubelet-client-2") || !strings.HasSuffix(base, ".pem") {
		t.Errorf("%s links to %s, want kubelet-client-<time>.pem", current, target)
	}
	info, err := os.Stat(f.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", f.kubeconfig, info.Mode())
	}
	kc, err := clientcmd.LoadFromFile(f.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	auth := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
	cluster := kc.Clusters[kc.Contexts[kc.CurrentContext].Cluster]
	if auth.ClientCertificate != current || auth.ClientKey != current {
		t.Errorf("%s: certificate %s and key %s, want %s", f.kubeconfig, auth.ClientCertificate, auth.ClientKey, current)
	}
	if cluster.Server != "https://127.0.0.1:6443" || string(cluster.CertificateAuthorityData) != string(f.ca.PEM) {
		t.Errorf("%s: server %s, CA of the bootstrap kubeconfig: %t", f.kubeconfig, cluster.Server, string(cluster.CertificateAuthorityData) == string(f.ca.PEM))
	}
	if _, _, err := validClientCert(f.kubeconfig, time.Now()); err != nil {
		t.Errorf("%s: %v", f.kubeconfig, err)
	}
}

func TestBootstrapWritesCertificateAndKubeconfig(t *testing.T) {
	f := newBootstrapFixture(t)
	k := f.client(t)
	waitIssued(t, k)
	checkBootstrapped(t, f)
	if k.certs == nil {
		t.Error("no certificate manager: the certificate would not be renewed")
	}
}

func TestBootstrapValidKubeconfigIsUsed(t *testing.T) {
	for _, ours := range []bool{false, true} {
		t.Run(fmt.Sprintf("certificate in --cert-dir %t", ours), func(t *testing.T) {
			f := newBootstrapFixture(t)
			certPEM, keyPEM := f.ca.ClientPEM(t, "system:node:node1", "system:nodes", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
			// A file of its own, outside --cert-dir.
			own := filepath.Join(t.TempDir(), "node1.pem")
			if err := os.WriteFile(own, append(certPEM, keyPEM...), 0o600); err != nil {
				t.Fatal(err)
			}
			auth := &clientcmdapi.AuthInfo{ClientCertificate: own, ClientKey: own}
			if ours {
				if err := os.MkdirAll(f.certDir, 0o700); err != nil {
					t.Fatal(err)
				}
				current := filepath.Join(f.certDir, "kubelet-client-current.pem")
				if err := os.WriteFile(current, append(certPEM, keyPEM...), 0o600); err != nil {
					t.Fatal(err)
				}
				auth = &clientcmdapi.AuthInfo{ClientCertificate: current, ClientKey: current}
			}
			writeTestKubeconfig(t, f.kubeconfig, f.ca, auth)
			k := f.client(t)
			select {
			case <-k.ready:
			default:
				t.Fatal("the client waits for a certificate it has")
			}
			if n := len(f.cluster.created()); n != 0 {
				t.Errorf("%d CertificateSigningRequests, want none", n)
			}
			if ours != (k.certs != nil) {
				t.Errorf("certificate manager %v: podsup renews only the certificates of --cert-dir", k.certs)
			}
		})
	}
}

// TestBootstrapInlineKubeconfigRotated: kubeadm init's kubelet.conf has
// the node's certificate inline. As the kubelet does, podsup makes it the
// first certificate of --cert-dir, so kubeadm's kubelet-finalize finds
// kubelet-client-current.pem, and rotates it out at once with a request
// made with it.
func TestBootstrapInlineKubeconfigRotated(t *testing.T) {
	f := newBootstrapFixture(t)
	certPEM, keyPEM := f.ca.ClientPEM(t, "system:node:node1", "system:nodes", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	writeTestKubeconfig(t, f.kubeconfig, f.ca, &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM})
	before, err := os.ReadFile(f.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	k := f.client(t)
	select {
	case <-k.ready:
	default:
		t.Fatal("the client waits for a certificate it has")
	}
	if k.certs == nil {
		t.Fatal("no certificate manager: the inline certificate would never be rotated")
	}
	seeded, _ := pem.Decode(certPEM)
	current := filepath.Join(f.certDir, "kubelet-client-current.pem")
	_, rotated := testenv.Poll(time.Minute, func() bool {
		data, err := os.ReadFile(current)
		if err != nil {
			return false // not written yet
		}
		block, _ := pem.Decode(data)
		return block != nil && string(block.Bytes) != string(seeded.Bytes)
	})
	if !rotated {
		t.Fatalf("%s still holds the certificate of --kubeconfig after a minute, or was never written", current)
	}
	csrs := f.cluster.created()
	if len(csrs) != 1 {
		t.Fatalf("%d CertificateSigningRequests, want 1", len(csrs))
	}
	f.mu.Lock()
	configs := len(f.clientConfigs)
	f.mu.Unlock()
	if configs != 1 {
		t.Errorf("%d clients made, want the node's own only: the bootstrap kubeconfig is not needed", configs)
	}
	after, err := os.ReadFile(f.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("%s was rewritten; kubeadm's kubelet-finalize does that", f.kubeconfig)
	}
}

func TestBootstrapExpiredKubeconfig(t *testing.T) {
	f := newBootstrapFixture(t)
	certPEM, keyPEM := f.ca.ClientPEM(t, "system:node:node1", "system:nodes", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	writeTestKubeconfig(t, f.kubeconfig, f.ca, &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM})
	f.clock.Step(2 * time.Hour) // the certificate of --kubeconfig has expired
	k := f.client(t)
	waitIssued(t, k)
	checkBootstrapped(t, f)
}

func TestBootstrapErrorsNameTheFile(t *testing.T) {
	f := newBootstrapFixture(t)
	f.bootstrap = filepath.Join(t.TempDir(), "missing.conf")
	b := certBootstrap{kubeconfig: f.kubeconfig, bootstrapKubeconfig: f.bootstrap, certDir: f.certDir, nodeName: "node1",
		log: slog.New(slog.DiscardHandler), clock: f.clock, newClient: newClientset}
	_, err := b.client(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--bootstrap-kubeconfig "+f.bootstrap) {
		t.Errorf("error %v, want one naming --bootstrap-kubeconfig %s", err, f.bootstrap)
	}
}

func TestBootstrapFlags(t *testing.T) {
	base := []string{"--manifests", "/m", "--node-name", "n1", "--root-dir", "/var/lib/podsup"}
	cfg, err := parseRun(t, append(base, "--kubeconfig", "/k", "--bootstrap-kubeconfig", "/b")...)
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Mirror; m.BootstrapKubeconfig != "/b" || m.CertDir != "/var/lib/podsup/pki" {
		t.Errorf("bootstrap kubeconfig %q, cert dir %q: want /b and <root-dir>/pki", m.BootstrapKubeconfig, m.CertDir)
	}
	cfg, err = parseRun(t, append(base, "--kubeconfig", "/k", "--bootstrap-kubeconfig", "/b", "--cert-dir", "/pki")...)
	if err != nil || cfg.Mirror.CertDir != "/pki" {
		t.Errorf("--cert-dir /pki: %v, %+v", err, cfg)
	}
	if _, err := parseRun(t, append(base, "--bootstrap-kubeconfig", "/b")...); err == nil || !strings.Contains(err.Error(), "--bootstrap-kubeconfig given without --kubeconfig") {
		t.Errorf("--bootstrap-kubeconfig without --kubeconfig: error %v", err)
	}
}
