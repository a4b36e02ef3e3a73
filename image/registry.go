package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/podsup/podsup/version"
)

// Registries is how podsup reaches registries. Nothing is insecure unless
// listed: every registry, loopback ones included, is reached over HTTPS and
// verified against the system's roots and the CAs of its directory.
type Registries struct {
	// CADir holds one directory per registry host, named host:port (or
	// containerd's host_port_), with CA certificates (*.crt) and client
	// certificates (*.cert and *.key), as docker's certs.d.
	CADir string
	// Insecure are the hosts reached over plain HTTP: host:port, or a host
	// name alone for any port.
	Insecure []string
}

// insecure reports whether host (a reference's domain) is listed.
func (r Registries) insecure(host string) bool {
	name, _ := splitPort(host)
	for _, h := range r.Insecure {
		if h == host || h == name {
			return true
		}
	}
	return false
}

// hosts configures the endpoint of one registry, once per pull attempt so
// that the resolver and the fetches share connections and tokens. The
// credential, if any, is sent to that registry only, never to another host
// a redirect or a token realm leads to.
func (r Registries) hosts(ctx context.Context, domain string, cred *Credential) docker.RegistryHosts {
	var once sync.Once
	var hosts []docker.RegistryHost
	var err error
	return func(host string) ([]docker.RegistryHost, error) {
		if host != domain {
			return nil, fmt.Errorf("registry %s: not configured for %s", host, domain)
		}
		once.Do(func() { hosts, err = r.endpoint(domain, cred) })
		return hosts, err
	}
}

// endpoint is a registry's address, scheme, TLS and authorizer.
func (r Registries) endpoint(domain string, cred *Credential) ([]docker.RegistryHost, error) {
	tlsConfig, err := r.tlsConfig(domain)
	if err != nil {
		return nil, err
	}
	scheme := "https"
	if r.insecure(domain) {
		scheme = "http"
	}
	addr := domain
	if domain == dockerHub {
		addr = "registry-1.docker.io"
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          10,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: 5 * time.Second,
	}}
	authOpts := []docker.AuthorizerOpt{docker.WithAuthClient(client)}
	if cred != nil {
		c := *cred
		authOpts = append(authOpts, docker.WithAuthCreds(func(host string) (string, string, error) {
			if host != addr && canonicalHost(host) != domain {
				return "", "", nil
			}
			return c.Username, c.Secret, nil
		}))
	}
	return []docker.RegistryHost{{
		Client:       client,
		Authorizer:   docker.NewDockerAuthorizer(authOpts...),
		Host:         addr,
		Scheme:       scheme,
		Path:         "/v2",
		Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush,
	}}, nil
}

// tlsConfig trusts the system's roots and the CAs in the registry's
// directory of CADir (host:port, or containerd's host_port_), and presents
// the client certificates there (*.cert with its *.key), as docker's
// certs.d does.
func (r Registries) tlsConfig(domain string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.CADir == "" {
		return cfg, nil
	}
	var dir string
	for _, d := range []string{domain, strings.Replace(domain, ":", "_", 1) + "_"} {
		if st, err := os.Stat(filepath.Join(r.CADir, d)); err == nil && st.IsDir() {
			dir = filepath.Join(r.CADir, d)
			break
		}
	}
	if dir == "" {
		return cfg, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("registry CAs for %s: %w", domain, err)
	}
	for _, e := range entries {
		file := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			if cfg.RootCAs == nil {
				if cfg.RootCAs, err = x509.SystemCertPool(); err != nil {
					cfg.RootCAs = x509.NewCertPool()
				}
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("registry CA for %s: %w", domain, err)
			}
			if !cfg.RootCAs.AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("registry CA %s: no PEM certificate in it", file)
			}
		case strings.HasSuffix(e.Name(), ".cert"):
			key := strings.TrimSuffix(file, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(file, key)
			if err != nil {
				return nil, fmt.Errorf("registry client certificate %s with key %s: %w", file, key, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
	}
	return cfg, nil
}

// Resolver returns a resolver for the images of one registry (a
// reference's domain, such as docker.io or 127.0.0.1:5000), sending cred
// (nil for none) to it.
func (r Registries) Resolver(ctx context.Context, domain string, cred *Credential) remotes.Resolver {
	return r.resolver(r.hosts(ctx, domain, cred))
}

func (Registries) resolver(hosts docker.RegistryHosts) remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{
		Hosts:   hosts,
		Headers: http.Header{"User-Agent": {"podsup/" + version.Version}},
	})
}

// maxRegistryMessage bounds what of a registry's error podsup repeats.
const maxRegistryMessage = 512

// withRegistryMessage adds the registry's own explanation to a failed pull.
// containerd resolves with HEAD requests, whose error responses carry no
// body: for those, the request is made again with GET to read it.
func withRegistryMessage(ctx context.Context, hosts docker.RegistryHosts, domain string, err error) error {
	var status remoteerrors.ErrUnexpectedStatus
	if !errors.As(err, &status) {
		return err
	}
	msg := registryErrors(status.Body)
	if msg == "" && status.RequestMethod == http.MethodHead && status.StatusCode >= 400 && status.StatusCode < 500 {
		msg = fetchRegistryMessage(ctx, hosts, domain, status.RequestURL)
	}
	if msg == "" {
		return err
	}
	return fmt.Errorf("%w; the registry says: %s", err, msg)
}

// fetchRegistryMessage GETs url as the registry's client would, answering
// one authentication challenge, and returns the registry's error message.
func fetchRegistryMessage(ctx context.Context, hosts docker.RegistryHosts, domain, url string) string {
	all, err := hosts(domain)
	if err != nil || len(all) == 0 {
		return ""
	}
	h := all[0]
	for _, c := range all {
		if strings.Contains(url, "://"+c.Host+"/") {
			h = c
		}
	}
	get := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", strings.Join([]string{images.MediaTypeDockerSchema2Manifest, images.MediaTypeDockerSchema2ManifestList,
			ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex, "*/*"}, ", "))
		if h.Authorizer != nil {
			if err := h.Authorizer.Authorize(ctx, req); err != nil {
				return nil, err
			}
		}
		return h.Client.Do(req)
	}
	resp, err := get()
	if err != nil {
		return ""
	}
	if resp.StatusCode == http.StatusUnauthorized && h.Authorizer != nil {
		if h.Authorizer.AddResponses(ctx, []*http.Response{resp}) == nil {
			resp.Body.Close()
			if resp, err = get(); err != nil {
				return ""
			}
		}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return registryErrors(body)
}

// registryErrors reads the error body of the registry API
// ({"errors":[{"code":...,"message":...}]}) or of a token service
// ({"details":...}), into one line.
func registryErrors(body []byte) string {
	var v struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
		Details string `json:"details"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var parts []string
	for _, e := range v.Errors {
		parts = append(parts, strings.TrimPrefix(e.Code+": "+e.Message, ": "))
	}
	for _, s := range []string{v.Details, v.Error} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	msg := strings.Join(parts, "; ")
	if len(msg) > maxRegistryMessage {
		msg = msg[:maxRegistryMessage] + "..."
	}
	return strings.ToValidUTF8(msg, "?")
}
