package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a cluster's certificates, in one directory: a CA (ca.crt), the
// apiserver's serving certificate (apiserver.crt, .key), its client
// certificate for kubelets (apiserver-kubelet-client.crt, .key), the service
// account signing key (sa.key, sa.pub), and client certificates made on
// demand.
type PKI struct {
	Dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

// NewPKI makes a CA, the apiserver's certificate for 127.0.0.1 and
// localhost, its client certificate for kubelets, and the service account
// key pair, in dir.
func NewPKI(dir string) (*PKI, error) {
	p := &PKI{Dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "podsup-test-ca"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := p.sign(tmpl, &key.PublicKey, tmpl, key)
	if err != nil {
		return nil, err
	}
	if p.caCert, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	p.caKey = key
	if err := p.write("ca", der, key); err != nil {
		return nil, err
	}
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, _, err := p.issue("apiserver", serving); err != nil {
		return nil, err
	}
	// As kubeadm's: the user alone, no group; what it may do on a node is
	// what RBAC grants it (BindKubeletClient).
	if _, _, err := p.Client("apiserver-kubelet-client", KubeletClientUser); err != nil {
		return nil, err
	}
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeKey(filepath.Join(dir, "sa.key"), sa); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return nil, err
	}
	return p, os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// Path is the path of a file of the PKI, such as "ca.crt".
func (p *PKI) Path(name string) string { return filepath.Join(p.Dir, name) }

// Client issues a client certificate for user in groups, written to
// <name>.crt and <name>.key, and returns both in PEM.
func (p *PKI) Client(name, user string, groups ...string) (certPEM, keyPEM []byte, err error) {
	return p.issue(name, &x509.Certificate{
		Subject:     pkix.Name{CommonName: user, Organization: groups},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// Kubeconfig writes a kubeconfig for server with a client certificate for
// user in groups, everything embedded, and returns its path.
func (p *PKI) Kubeconfig(name, server, user string, groups ...string) (string, error) {
	certPEM, keyPEM, err := p.Client(name, user, groups...)
	if err != nil {
		return "", err
	}
	ca, err := os.ReadFile(p.Path("ca.crt"))
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: %s
  user: {client-certificate-data: %s, client-key-data: %s}
contexts:
- name: test
  context: {cluster: test, user: %s}
current-context: test
`, server, b64(ca), name, b64(certPEM), b64(keyPEM), name)
	path := p.Path(name + ".kubeconfig")
	return path, os.WriteFile(path, []byte(config), 0o600)
}

// SignCSR issues, with the CA, the client certificate a PEM certificate
// signing request asks for, valid from a minute ago for lifetime, as a
// signer of the certificates API would, and returns it in PEM.
func (p *PKI) SignCSR(csrPEM []byte, lifetime time.Duration) ([]byte, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("no PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: req.Subject,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(lifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, req.PublicKey, p.caKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// issue signs a certificate of tmpl with the CA and writes <name>.crt and
// <name>.key.
func (p *PKI) issue(name string, tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage |= x509.KeyUsageDigitalSignature
	der, err := p.sign(tmpl, &key.PublicKey, p.caCert, p.caKey)
	if err != nil {
		return nil, nil, err
	}
	if err := p.write(name, der, key); err != nil {
		return nil, nil, err
	}
	certPEM, err = os.ReadFile(p.Path(name + ".crt"))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = os.ReadFile(p.Path(name + ".key"))
	return certPEM, keyPEM, err
}

func (p *PKI) sign(tmpl *x509.Certificate, pub *ecdsa.PublicKey, parent *x509.Certificate, signer *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

func (p *PKI) write(name string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.WriteFile(p.Path(name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return writeKey(p.Path(name+".key"), key)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}
