package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/podsup/podsup/image"
)

// Registry is a registry of a test's own: Debian's docker-registry (the
// distribution registry) on a free loopback port, with TLS from a CA made
// for the test and htpasswd users. It is stopped when the test ends.
type Registry struct {
	// Host is the registry's address as references name it: 127.0.0.1:PORT.
	Host string
	// CADir is for podsup's --registry-ca: CADir/Host/ca.crt is the CA.
	CADir string
	// CA is the test CA's certificate pool.
	CA *x509.CertPool
	// Log is the registry's log file.
	Log string
}

// StartRegistry starts a registry whose users are the keys of users, with
// the values as passwords.
func StartRegistry(t testing.TB, users map[string]string) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		Unavailable(t, "docker-registry is not installed (Debian package docker-registry)")
	}
	htpasswd, err := exec.LookPath("htpasswd")
	if err != nil {
		Unavailable(t, "htpasswd is not installed (Debian package apache2-utils)")
	}
	dir := t.TempDir()
	host := FreeAddr(t)
	r := &Registry{Host: host, CADir: filepath.Join(dir, "certs.d"), Log: filepath.Join(dir, "registry.log")}
	caPEM, certPEM, keyPEM := testCertificates(t, "127.0.0.1")
	r.CA = x509.NewCertPool()
	r.CA.AppendCertsFromPEM(caPEM)
	for name, data := range map[string][]byte{
		filepath.Join(r.CADir, host, "ca.crt"): caPEM,
		filepath.Join(dir, "server.crt"):       certPEM,
		filepath.Join(dir, "server.key"):       keyPEM,
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var lines []byte
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		out, err := exec.Command(htpasswd, "-Bbn", u, users[u]).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		lines = append(lines, out...)
	}
	config := fmt.Sprintf(`version: 0.1
log: {level: info, accesslog: {disabled: false}}
storage:
  filesystem: {rootdirectory: %q}
  delete: {enabled: true}
http:
  addr: %q
  tls: {certificate: %q, key: %q}
auth:
  htpasswd: {realm: podsup-test, path: %q}
`, filepath.Join(dir, "data"), host, filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "htpasswd"))
	for name, data := range map[string][]byte{"htpasswd": lines, "config.yml": []byte(config)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logFile, err := os.Create(r.Log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { // owned by the cleanup, which waits for it
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.CA}}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	for deadline := time.Now().Add(StartLimit); time.Now().Before(deadline); {
		resp, err := client.Get("https://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		select {
		case <-exited:
			data, _ := os.ReadFile(r.Log)
			t.Fatalf("docker-registry exited as it started on %s (%s):\n%s", host, cmd.ProcessState, data)
		case <-time.After(50 * time.Millisecond):
		}
	}
	data, _ := os.ReadFile(r.Log)
	t.Fatalf("docker-registry did not answer on %s within %s:\n%s", host, StartLimit, data)
	return nil
}

// Push pushes img to the registry as ref (a reference on Host), logging in
// as user.
func (r *Registry) Push(t testing.TB, ctx context.Context, client *containerd.Client, img containerd.Image, ref, user, password string) {
	t.Helper()
	resolver := image.Registries{CADir: r.CADir}.Resolver(ctx, r.Host, &image.Credential{Username: user, Secret: password, Source: "test"})
	if err := client.Push(ctx, ref, img.Target(), containerd.WithResolver(resolver)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// testCertificates makes a CA and a server certificate for ip signed by it,
// valid for a day, in PEM.
func testCertificates(t testing.TB, ip string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "podsup test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
