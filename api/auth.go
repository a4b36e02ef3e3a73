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
	"encoding/base64"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
)

// User is who made a request.
type User struct {
	Name      string
	UID       string
	Groups    []string
	Extra     map[string][]string
	Anonymous bool
}

// info is the user as the apiserver's authorizer types take it.
func (u User) info() user.Info {
	return &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
}

// authenticated adds the group every authenticated user is in, as the
// kubelet's authenticator does, so RBAC bindings to it apply.
func (u User) authenticated() User {
	if !slices.Contains(u.Groups, user.AllAuthenticated) {
		u.Groups = append(slices.Clip(u.Groups), user.AllAuthenticated)
	}
	return u
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
// bearer token from the token file or one the apiserver's TokenReview
// accepts, or, only when allowed, nobody. With an Authorizer it then asks
// whether that user may do what the request asks, before any routing.
type Authenticator struct {
	tokens    []Token
	anonymous bool
	opts      authOptions
}

// TokenAuthenticator checks a bearer token the token file does not hold:
// with a TokenReview sent to the apiserver, through a cache. It has the
// shape of the apiserver's authenticator.Token. An error is a review that
// could not be made, not a refused token.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (*authenticator.Response, bool, error)
}

type authOptions struct {
	tokenReview TokenAuthenticator
	authorizer  Authorizer
	nodeName    string
	log         *slog.Logger
}

// AuthOption configures an Authenticator. None can fail, so unlike
// podsup's other options they return no error.
type AuthOption func(*authOptions)

// WithTokenReview checks bearer tokens the token file does not hold with t.
func WithTokenReview(t TokenAuthenticator) AuthOption {
	return func(o *authOptions) { o.tokenReview = t }
}

// WithAuthorizer has az authorize every request as one on the Node
// nodeName (Webhook mode). Without it, any authenticated user may do
// anything and anonymous users may only read (AlwaysAllow).
func WithAuthorizer(nodeName string, az Authorizer) AuthOption {
	return func(o *authOptions) { o.nodeName, o.authorizer = nodeName, az }
}

// WithAuthLogger sets the logger of failed reviews.
func WithAuthLogger(l *slog.Logger) AuthOption {
	return func(o *authOptions) { o.log = l }
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
func NewAuthenticator(tokens []Token, anonymous bool, opts ...AuthOption) *Authenticator {
	a := &Authenticator{tokens: tokens, anonymous: anonymous}
	for _, o := range opts {
		o(&a.opts)
	}
	if a.opts.log == nil {
		a.opts.log = slog.Default()
	}
	return a
}

var (
	// errUnauthorized is a request with no identity, or a wrong one.
	errUnauthorized = errors.New("Unauthorized")
	// errTokenReview is a bearer token the apiserver could not be asked
	// about: neither accepted nor refused.
	errTokenReview = errors.New("token review failed")
)

// authenticate returns the request's user. A bad token is refused, never
// taken for anonymous.
func (a *Authenticator) authenticate(r *http.Request) (User, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		cert := r.TLS.VerifiedChains[0][0]
		return User{Name: cert.Subject.CommonName, Groups: cert.Subject.Organization}.authenticated(), nil
	}
	if token, given, err := bearerToken(r); given {
		if err != nil {
			return User{}, errUnauthorized
		}
		for _, e := range a.tokens {
			if subtle.ConstantTimeCompare(e.token, []byte(token)) == 1 {
				return e.user.authenticated(), nil
			}
		}
		if a.opts.tokenReview == nil || token == "" {
			return User{}, errUnauthorized
		}
		resp, ok, err := a.opts.tokenReview.AuthenticateToken(r.Context(), token)
		if err != nil {
			return User{}, fmt.Errorf("%w: %w", errTokenReview, err)
		}
		if !ok {
			return User{}, errUnauthorized
		}
		u := resp.User
		return User{Name: u.GetName(), UID: u.GetUID(), Groups: u.GetGroups(), Extra: u.GetExtra()}.authenticated(), nil
	}
	if a.anonymous {
		return User{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}, Anonymous: true}, nil
	}
	return User{}, errUnauthorized
}

// webSocketTokenPrefix marks a bearer token in a WebSocket's subprotocols,
// where a browser, which cannot set headers on a WebSocket, puts it: as the
// kubelet and the apiserver accept it.
const webSocketTokenPrefix = "base64url.bearer.authorization.k8s.io."

// bearerToken is the request's bearer token, from its Authorization header
// or, for a WebSocket, from its subprotocols, which then no longer name it
// (so the server never echoes it back). given says whether there was one.
func bearerToken(r *http.Request) (token string, given bool, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return "", true, errUnauthorized
		}
		return strings.TrimSpace(token), true, nil
	}
	var kept []string
	for _, h := range r.Header.Values("Sec-Websocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			p = strings.TrimSpace(p)
			if encoded, ok := strings.CutPrefix(p, webSocketTokenPrefix); ok && !given {
				data, derr := base64.RawURLEncoding.DecodeString(encoded)
				token, given, err = string(data), true, derr
				continue
			}
			if p != "" {
				kept = append(kept, p)
			}
		}
	}
	if given {
		r.Header.Del("Sec-Websocket-Protocol")
		if len(kept) > 0 {
			r.Header.Set("Sec-Websocket-Protocol", strings.Join(kept, ", "))
		}
	}
	return token, given, err
}

// Middleware authenticates every request, then authorizes it with the
// Authorizer; without one, anonymous users may only read.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	unauthorized := "Unauthorized: present a client certificate signed by --client-ca-file or a bearer token from --token-auth-file"
	if a.opts.tokenReview != nil {
		unauthorized += " or one the apiserver accepts"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := a.authenticate(r)
		switch {
		case errors.Is(err, errTokenReview):
			// Not a 401, as the kubelet answers: the token may be good,
			// and a client should not drop it for an apiserver outage.
			a.opts.log.Error("bearer token not checked", "err", err)
			writeJSON(w, http.StatusInternalServerError, statusBody(http.StatusInternalServerError, "InternalError",
				"Authentication error: the bearer token could not be checked with the apiserver"))
			return
		case err != nil:
			writeJSON(w, http.StatusUnauthorized, statusBody(http.StatusUnauthorized, "Unauthorized", unauthorized))
			return
		}
		if a.opts.authorizer != nil {
			if !authorize(r.Context(), a.opts.authorizer, RequestAttributes(a.opts.nodeName, u.info(), r), w, a.opts.log) {
				return
			}
		} else if u.Anonymous && (r.Method != http.MethodGet && r.Method != http.MethodHead || isStreaming(r.URL.Path)) {
			// A WebSocket exec is a GET, and no read.
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
