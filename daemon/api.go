package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/api/delegate"
)

// APIConfig is how podsup serves its API: the authenticated port, its
// credentials, and the admin socket.
type APIConfig struct {
	Address       string
	TLSCertFile   string
	TLSKeyFile    string
	ClientCAFile  string
	TokenAuthFile string
	AnonymousAuth bool
	// TokenWebhook checks bearer tokens the token file does not hold with
	// TokenReviews, answers kept for TokenWebhookCacheTTL.
	TokenWebhook         bool
	TokenWebhookCacheTTL time.Duration
	// AuthorizationMode is AlwaysAllow or Webhook: SubjectAccessReviews,
	// allowed answers kept for AuthorizedTTL, refused ones for
	// UnauthorizedTTL.
	AuthorizationMode string
	AuthorizedTTL     time.Duration
	UnauthorizedTTL   time.Duration
	AdminSocket       string
	Streams           api.StreamLimits
}

// kubeletPort is the port of Address, the one the Node reports as its
// kubelet endpoint; 0 without an authenticated API.
func (c APIConfig) kubeletPort() int32 {
	_, p, err := net.SplitHostPort(c.Address)
	if err != nil {
		return 0
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		return 0
	}
	return int32(port)
}

// The modes of --authorization-mode, named as the kubelet's.
const (
	// AuthorizationAlwaysAllow lets an authenticated user do anything, and
	// an anonymous one read.
	AuthorizationAlwaysAllow = "AlwaysAllow"
	// AuthorizationWebhook asks the apiserver about each request.
	AuthorizationWebhook = "Webhook"
)

// DefaultAdminSocket is where the command line finds podsup on this machine.
const DefaultAdminSocket = api.DefaultAdminSocket

// apiFlags are the flags of the authenticated API, named as the kubelet's.
func apiFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "address", Value: "0.0.0.0:10250", Usage: "address of the authenticated API over TLS; empty disables", EnvVars: envVar("address")},
		&cli.StringFlag{Name: "tls-cert-file", Usage: "serving certificate `FILE` of --address; default: a self-signed one kept in the root dir", EnvVars: envVar("tls-cert-file")},
		&cli.StringFlag{Name: "tls-private-key-file", Usage: "key `FILE` of --tls-cert-file", EnvVars: envVar("tls-private-key-file")},
		&cli.StringFlag{Name: "client-ca-file", Usage: "PEM `FILE` of CAs whose client certificates --address accepts", EnvVars: envVar("client-ca-file")},
		&cli.StringFlag{Name: "token-auth-file", Usage: "static token `FILE` (token,user,uid[,\"groups\"]) whose bearer tokens --address accepts", EnvVars: envVar("token-auth-file")},
		&cli.BoolFlag{Name: "anonymous-auth", Usage: "accept requests with no credentials on --address as system:anonymous: they may only read with --authorization-mode AlwaysAllow, and what the apiserver allows with Webhook", EnvVars: envVar("anonymous-auth")},
		&cli.BoolFlag{Name: "authentication-token-webhook", Usage: "check bearer tokens not in --token-auth-file with TokenReviews sent to the apiserver of --kubeconfig", EnvVars: envVar("authentication-token-webhook")},
		&cli.DurationFlag{Name: "authentication-token-webhook-cache-ttl", Value: delegate.DefaultTokenCacheTTL, Usage: "how long a TokenReview's answer is kept", EnvVars: envVar("authentication-token-webhook-cache-ttl")},
		&cli.StringFlag{Name: "authorization-mode", Value: AuthorizationAlwaysAllow, Usage: "AlwaysAllow: authenticated users may do everything on --address; Webhook: each request is authorized with a SubjectAccessReview sent to the apiserver of --kubeconfig, as the kubelet's", EnvVars: envVar("authorization-mode")},
		&cli.DurationFlag{Name: "authorization-webhook-cache-authorized-ttl", Value: delegate.DefaultAuthorizedTTL, Usage: "how long a SubjectAccessReview that allowed is kept", EnvVars: envVar("authorization-webhook-cache-authorized-ttl")},
		&cli.DurationFlag{Name: "authorization-webhook-cache-unauthorized-ttl", Value: delegate.DefaultUnauthorizedTTL, Usage: "how long a SubjectAccessReview that refused is kept", EnvVars: envVar("authorization-webhook-cache-unauthorized-ttl")},
		&cli.DurationFlag{Name: "streaming-connection-idle-timeout", Value: api.DefaultStreamLimits.IdleTimeout, Usage: "close an exec, attach or port-forward connection idle this long", EnvVars: envVar("streaming-connection-idle-timeout")},
		&cli.IntFlag{Name: "max-streams-per-pod", Value: api.DefaultStreamLimits.PerPod, Usage: "most exec, attach and port-forward connections open to one pod at once", EnvVars: envVar("max-streams-per-pod")},
		&cli.StringFlag{Name: "admin-socket", Value: DefaultAdminSocket, Usage: "root-only unix `SOCKET` serving the full API without TLS, for the command line; empty disables", EnvVars: envVar("admin-socket")},
	}
}

// apiConfigFrom reads and checks the API's flags.
func apiConfigFrom(c *cli.Context) (APIConfig, error) {
	cfg := APIConfig{
		Address: c.String("address"), TLSCertFile: c.String("tls-cert-file"), TLSKeyFile: c.String("tls-private-key-file"),
		ClientCAFile: c.String("client-ca-file"), TokenAuthFile: c.String("token-auth-file"),
		AnonymousAuth: c.Bool("anonymous-auth"), AdminSocket: c.String("admin-socket"),
		TokenWebhook: c.Bool("authentication-token-webhook"), TokenWebhookCacheTTL: c.Duration("authentication-token-webhook-cache-ttl"),
		AuthorizationMode: c.String("authorization-mode"),
		AuthorizedTTL:     c.Duration("authorization-webhook-cache-authorized-ttl"),
		UnauthorizedTTL:   c.Duration("authorization-webhook-cache-unauthorized-ttl"),
		Streams:           api.StreamLimits{IdleTimeout: c.Duration("streaming-connection-idle-timeout"), PerPod: c.Int("max-streams-per-pod")},
	}
	if cfg.Streams.IdleTimeout <= 0 || cfg.Streams.PerPod <= 0 {
		return cfg, errors.New("--streaming-connection-idle-timeout and --max-streams-per-pod must be positive")
	}
	switch cfg.AuthorizationMode {
	case AuthorizationAlwaysAllow, AuthorizationWebhook:
	default:
		return cfg, fmt.Errorf("--authorization-mode %q: want %s or %s", cfg.AuthorizationMode, AuthorizationAlwaysAllow, AuthorizationWebhook)
	}
	if c.String("kubeconfig") == "" {
		if cfg.TokenWebhook {
			return cfg, errors.New("--authentication-token-webhook given without --kubeconfig: the tokens are checked with its apiserver")
		}
		if cfg.AuthorizationMode == AuthorizationWebhook {
			return cfg, errors.New("--authorization-mode Webhook given without --kubeconfig: requests are authorized by its apiserver")
		}
	}
	for flag, d := range map[string]time.Duration{
		"authentication-token-webhook-cache-ttl":       cfg.TokenWebhookCacheTTL,
		"authorization-webhook-cache-authorized-ttl":   cfg.AuthorizedTTL,
		"authorization-webhook-cache-unauthorized-ttl": cfg.UnauthorizedTTL,
	} {
		if d < 0 {
			return cfg, fmt.Errorf("--%s %s: must not be negative", flag, d)
		}
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return cfg, errors.New("--tls-cert-file and --tls-private-key-file go together")
	}
	if cfg.AdminSocket != "" && !filepath.IsAbs(cfg.AdminSocket) {
		return cfg, fmt.Errorf("--admin-socket %q: must be an absolute path", cfg.AdminSocket)
	}
	if cfg.Address != "" {
		if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
			return cfg, fmt.Errorf("--address %q: want HOST:PORT", cfg.Address)
		}
	}
	return cfg, nil
}

// servers starts podsup's HTTP servers, each owned by wg and stopped by
// ctx; a server that cannot start or fails stops podsup through cancel.
type servers struct {
	ctx    context.Context
	wg     *sync.WaitGroup
	cancel context.CancelFunc
	log    *slog.Logger
}

func (s servers) serve(name, addr string, h http.Handler, streaming bool) {
	if addr == "" {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := api.Serve(s.ctx, addr, h, s.log, streaming); err != nil {
			s.log.Error("server stopped", "server", name, "address", addr, "err", err)
			s.cancel()
		}
	}()
}

func (s servers) serveListener(name string, ln net.Listener, h http.Handler) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := api.ServeListener(s.ctx, ln, h, s.log, true); err != nil {
			s.log.Error("server stopped", "server", name, "address", ln.Addr().String(), "err", err)
			s.cancel()
		}
	}()
}

// start serves the read-only port, /healthz, the authenticated port and the
// admin socket as cfg says. Credentials are read now, so a bad file stops
// podsup at start with its name.
func (s servers) start(cfg *Config, deps api.Deps, hostIP string, kube *kubeClient) error {
	ac := cfg.API
	if ac.Address != "" {
		auth, err := apiAuth(ac, kube, cfg.NodeName, s.log)
		if err != nil {
			return err
		}
		tlsCfg, err := api.ServingTLS(ac.TLSCertFile, ac.TLSKeyFile, ac.ClientCAFile, filepath.Join(cfg.RootDir, "pki"), cfg.NodeName, []net.IP{net.ParseIP(hostIP)})
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", ac.Address)
		if err != nil {
			return fmt.Errorf("--address: %w", err)
		}
		s.serveListener("authenticated", tls.NewListener(ln, tlsCfg), auth.Middleware(api.FullHandler(deps)))
	}
	if ac.AdminSocket != "" {
		ln, err := api.ListenUnix(ac.AdminSocket)
		if err != nil {
			return fmt.Errorf("--admin-socket: %w", err)
		}
		s.serveListener("admin", ln, api.FullHandler(deps))
	}
	readOnly := api.ReadOnlyHandler(deps)
	if cfg.Profiling {
		readOnly = withProfiling(readOnly)
	}
	s.serve("read-only", cfg.ReadOnlyAddress, readOnly, false)
	s.serve("healthz", cfg.HealthzAddress, api.HealthzHandler(deps.Health), false)
	return nil
}

// nodeSummary describes the node for the status page: readiness and how
// much memory and disk are used.
type nodeSummary struct {
	name     string
	rootDir  string
	ready    func() error
	pressure func() []v1.NodeCondition
}

func (n nodeSummary) NodeSummary() api.NodeSummary {
	s := api.NodeSummary{Name: n.name}
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "PodsupReady", Message: "podsup is syncing pods"}
	if err := n.ready(); err != nil {
		ready.Status, ready.Reason, ready.Message = v1.ConditionFalse, "PodsupNotReady", err.Error()
	}
	ready.LastHeartbeatTime = metav1.Now()
	s.Conditions = append([]v1.NodeCondition{ready}, n.pressure()...)
	if total := memTotal(); total > 0 {
		s.Memory = api.Usage{Capacity: uint64(total), Used: uint64(max(total-memAvailable(), 0))}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(n.rootDir, &fs); err == nil {
		s.Disk = api.Usage{Capacity: fs.Blocks * uint64(fs.Bsize), Used: (fs.Blocks - fs.Bavail) * uint64(fs.Bsize)}
	}
	return s
}
