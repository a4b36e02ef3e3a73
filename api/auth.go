package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// User is who made a request.
type User struct {
	Name      string
	UID       string
	Groups    []string
	Anonymous bool
}

type userKey struct{}

// UserFrom returns the user of an authenticated request.
func UserFrom(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey{}).(User)
	return u, ok
}

// Token is one line of a static token file.
type Token struct {
	token []byte
	user  User
}

// Authenticator decides who a request comes from, as the kubelet's
// authenticated port does: a client certificate signed by the client CA, a
// bearer token from the token file, or, only when allowed, nobody.
type Authenticator struct {
	tokens    []Token
	anonymous bool
}

// ReadTokenFile reads a static token file in the kube-apiserver's format:
// token,user,uid[,"group1,group2"] per line.
func ReadTokenFile(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--token-auth-file: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(io.LimitReader(f, 1<<20))
	r.FieldsPerRecord = -1
	r.Comment = '#'
	var entries []Token
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(rec) < 3 || rec[0] == "" || rec[1] == "" {
			pos, _ := r.FieldPos(0)
			return nil, fmt.Errorf("%s: line %d: want token,user,uid[,\"group1,group2\"]", path, pos)
		}
		e := Token{token: []byte(rec[0]), user: User{Name: rec[1], UID: rec[2]}}
		if len(rec) > 3 && rec[3] != "" {
			e.user.Groups = strings.Split(rec[3], ",")
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// NewAuthenticator returns an authenticator over the given tokens.
func NewAuthenticator(tokens []Token, anonymous bool) *Authenticator {
	return &Authenticator{tokens: tokens, anonymous: anonymous}
}

// errUnauthorized is a request with no identity, or a wrong one.
var errUnauthorized = errors.New("Unauthorized")

// authenticate returns the request's user. A bad token is refused, never
// taken for anonymous.
func (a *Authenticator) authenticate(r *http.Request) (User, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		cert := r.TLS.VerifiedChains[0][0]
		return User{Name: cert.Subject.CommonName, Groups: cert.Subject.Organization}, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return User{}, errUnauthorized
		}
		for _, e := range a.tokens {
			if subtle.ConstantTimeCompare(e.token, []byte(strings.TrimSpace(token))) == 1 {
				return e.user, nil
			}
		}
		return User{}, errUnauthorized
	}
	if a.anonymous {
		return User{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}, Anonymous: true}, nil
	}
	return User{}, errUnauthorized
}

// Middleware authenticates every request; anonymous users may only read.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := a.authenticate(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "Unauthorized: present a client certificate signed by --client-ca-file or a bearer token from --token-auth-file")
			return
		}
		if u.Anonymous && r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusForbidden, "Forbidden: anonymous requests may only read")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// ServingTLS is the TLS configuration of the authenticated port: the given
// certificate and key, or a self-signed pair made on first start and kept in
// dir; client certificates verified against clientCA when it is set.
func ServingTLS(certFile, keyFile, clientCA, dir, nodeName string, ips []net.IP) (*tls.Config, error) {
	if certFile == "" {
		certFile, keyFile = filepath.Join(dir, "podsup.crt"), filepath.Join(dir, "podsup.key")
		if err := ensureSelfSigned(certFile, keyFile, nodeName, ips); err != nil {
			return nil, err
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		data, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--client-ca-file %s: no PEM certificate", clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// ensureSelfSigned makes a self-signed serving certificate unless a valid
// one is already there, as the kubelet does without --tls-cert-file.
func ensureSelfSigned(certFile, keyFile, nodeName string, ips []net.IP) error {
	if pair, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil && time.Until(leaf.NotAfter) > 30*24*time.Hour {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: nodeName + "@" + fmt.Sprint(now.Unix())},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{nodeName, "localhost"}, IPAddresses: append(ips, net.IPv4(127, 0, 0, 1)),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
