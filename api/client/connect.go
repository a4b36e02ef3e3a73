package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/rest"

	"github.com/podsup/podsup/api"
)

// Where the commands find podsup unless --server says otherwise: the admin
// socket, and when it does not answer (not root, or no socket), the
// read-only port.
const (
	DefaultSocket   = api.DefaultAdminSocket
	DefaultReadOnly = "http://127.0.0.1:10255"
)

// Connection timeouts. Streams (follows and watches) have no overall
// timeout; everything else has --request-timeout.
const (
	dialTimeout         = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	defaultTimeout      = 30 * time.Second
)

// connFlags are the flags that say where podsup is and how to authenticate
// to it, named as kubectl's.
func connFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "server", Aliases: []string{"s"}, EnvVars: []string{"PODSUP_SERVER"},
			Usage: "podsup's API: `URL` unix:///PATH, https://HOST:10250 or http://HOST:10255 (default: the admin socket " + DefaultSocket + ", else the read-only port " + DefaultReadOnly + ")"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"PODSUP_TOKEN"}, Usage: "bearer `TOKEN` for the authenticated port"},
		&cli.StringFlag{Name: "token-file", Usage: "`FILE` holding the bearer token"},
		&cli.StringFlag{Name: "certificate-authority", Usage: "PEM `FILE` of the CA (or the self-signed certificate) of the authenticated port"},
		&cli.StringFlag{Name: "client-certificate", Usage: "client certificate `FILE` for TLS"},
		&cli.StringFlag{Name: "client-key", Usage: "key `FILE` of --client-certificate"},
		&cli.BoolFlag{Name: "insecure-skip-tls-verify", Usage: "do not check the server's certificate (insecure)"},
		&cli.DurationFlag{Name: "request-timeout", Value: defaultTimeout, Usage: "how long to wait (`DURATION`) for an answer, except to a follow or a watch"},
	}
}

// withConn is a command's flags followed by the connection flags.
func withConn(flags ...cli.Flag) []cli.Flag { return append(flags, connFlags()...) }

// connOptions are the values of connFlags.
type connOptions struct {
	server                   string
	token, tokenFile         string
	caFile                   string
	certFile, keyFile        string
	insecureSkipVerify       bool
	timeout                  time.Duration
	defaultSocket, defaultRO string // the defaults, replaced in tests
}

func connOptionsFrom(c *cli.Context) connOptions {
	return connOptions{
		server: c.String("server"), token: c.String("token"), tokenFile: c.String("token-file"),
		caFile: c.String("certificate-authority"), certFile: c.String("client-certificate"), keyFile: c.String("client-key"),
		insecureSkipVerify: c.Bool("insecure-skip-tls-verify"), timeout: c.Duration("request-timeout"),
		defaultSocket: DefaultSocket, defaultRO: DefaultReadOnly,
	}
}

// newClient builds a client from the connection flags.
func newClient(o connOptions) (*Client, error) {
	c := &Client{token: o.token, timeout: o.timeout, tlsFiles: restTLS(o)}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if o.tokenFile != "" {
		if o.token != "" {
			return nil, errors.New("--token and --token-file: give one")
		}
		data, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(data))
	}
	tlsCfg, err := clientTLS(o)
	if err != nil {
		return nil, err
	}
	if o.server != "" {
		ep, err := parseServer(o.server, tlsCfg)
		if err != nil {
			return nil, err
		}
		c.endpoints = []endpoint{ep}
		return c, nil
	}
	sock, err := parseServer("unix://"+o.defaultSocket, tlsCfg)
	if err != nil {
		return nil, err
	}
	ro, err := parseServer(o.defaultRO, tlsCfg)
	if err != nil {
		return nil, err
	}
	ro.readOnly = true
	c.endpoints = []endpoint{sock, ro}
	return c, nil
}

// parseServer reads --server: unix:///PATH (or a bare absolute path),
// http://HOST:PORT or https://HOST:PORT.
func parseServer(server string, tlsCfg *tls.Config) (endpoint, error) {
	if strings.HasPrefix(server, "/") {
		server = "unix://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		return endpoint{}, fmt.Errorf("--server %q: %w", server, err)
	}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: tlsHandshakeTimeout,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if u.Host != "" || !strings.HasPrefix(path, "/") {
			return endpoint{}, fmt.Errorf("--server %q: want unix:///ABSOLUTE/PATH", server)
		}
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		return endpoint{display: "unix://" + path, base: "http://podsup", http: &http.Client{Transport: tr}, dial: tr.DialContext, unix: true}, nil
	case "http", "https":
		if u.Host == "" {
			return endpoint{}, fmt.Errorf("--server %q: no host", server)
		}
		return endpoint{display: server, base: strings.TrimRight(server, "/"), http: &http.Client{Transport: tr}, dial: tr.DialContext, tls: tlsCfg}, nil
	}
	return endpoint{}, fmt.Errorf("--server %q: want unix:///PATH, https://HOST:PORT or http://HOST:PORT", server)
}

// restTLS is the TLS part of the connection flags as client-go's streaming
// packages take it: they build their own TLS configuration from files.
func restTLS(o connOptions) rest.TLSClientConfig {
	cfg := rest.TLSClientConfig{CertFile: o.certFile, KeyFile: o.keyFile, Insecure: o.insecureSkipVerify}
	if !o.insecureSkipVerify {
		// client-go refuses a CA with the insecure flag; clientTLS lets the
		// flag win, and so does this.
		cfg.CAFile = o.caFile
	}
	return cfg
}

// clientTLS is the TLS configuration for https servers.
func clientTLS(o connOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.insecureSkipVerify}
	if o.caFile != "" {
		data, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--certificate-authority: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--certificate-authority %s: no PEM certificate in it", o.caFile)
		}
		cfg.RootCAs = pool
	}
	if (o.certFile == "") != (o.keyFile == "") {
		return nil, errors.New("--client-certificate and --client-key go together")
	}
	if o.certFile != "" {
		pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--client-certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
