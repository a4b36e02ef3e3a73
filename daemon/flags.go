package daemon

import (
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/podsup/podsup/cni"
	"github.com/podsup/podsup/eviction"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
)

// Config is everything `podsup run` was told, checked. Bad values are refused
// at start, each with a message naming its flag.
type Config struct {
	// IgnoredConfigFields are the fields of a --config KubeletConfiguration
	// that podsup does not implement, warned about at start.
	IgnoredConfigFields []string
	Manifests           string
	ManifestURL         string
	ManifestURLHeaders  http.Header
	ManifestURLCA       string
	FileCheckFrequency  time.Duration
	HTTPCheckFrequency  time.Duration
	NodeName            string
	RootDir             string
	LogDir              string
	SeccompDir          string
	ContainerdAddress   string
	ContainerdNS        string
	ReadOnlyAddress     string
	HealthzAddress      string
	Verbosity           int
	PauseImage          string
	CgroupDriver        string
	LogMaxSize          int64
	LogMaxFiles         int
	BackoffInitial      time.Duration
	BackoffMax          time.Duration
	NodeIP              string
	ResolvConf          string
	ClusterDNS          []string
	ClusterDomain       string
	Profiling           bool
	CNIConfDir          string
	CNIBinDirs          []string
	PodCIDR             string
	SyncFrequency       time.Duration
	// Sysctls are the sysctls pods may set: the kubelet's safe ones and
	// --allowed-unsafe-sysctls.
	Sysctls  *podspec.SysctlAllowlist
	Images   ImageConfig
	Mirror   MirrorConfig
	API      APIConfig
	Eviction eviction.Config
}

// envVar is the environment variable that sets a flag: PODSUP_ and the flag
// name in upper case with dashes as underscores.
func envVar(flag string) []string {
	return []string{"PODSUP_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

// runFlags are the flags of `podsup run`. Names follow the kubelet's where it
// has one, so scripts and habits carry over.
func runFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML `FILE` of settings, keyed by flag name; flags and environment variables override it", EnvVars: envVar("config")},
		&cli.StringFlag{Name: "manifests", Aliases: []string{"pod-manifest-path"}, Value: "/etc/kubernetes/manifests", Usage: "`DIR` of static pod manifests; empty disables", EnvVars: envVar("manifests")},
		&cli.StringFlag{Name: "manifest-url", Usage: "`URL` polled for manifests", EnvVars: envVar("manifest-url")},
		&cli.StringSliceFlag{Name: "manifest-url-header", Usage: "header sent with manifest URL requests, \"Name: value\" (repeatable)", EnvVars: envVar("manifest-url-header")},
		&cli.StringFlag{Name: "manifest-url-ca", Usage: "PEM `FILE` of CAs to trust for the manifest URL instead of the system roots", EnvVars: envVar("manifest-url-ca")},
		&cli.DurationFlag{Name: "file-check-frequency", Value: 20 * time.Second, Usage: "how often the manifest directory is re-listed in full", EnvVars: envVar("file-check-frequency")},
		&cli.DurationFlag{Name: "http-check-frequency", Value: 20 * time.Second, Usage: "how often the manifest URL is polled", EnvVars: envVar("http-check-frequency")},
		&cli.StringFlag{Name: "node-name", Aliases: []string{"hostname-override"}, Value: manifest.DefaultNodeName(), Usage: "this node's name, appended to static pod names", EnvVars: envVar("node-name")},
		&cli.StringFlag{Name: "root-dir", Value: "/var/lib/podsup", Usage: "`DIR` for pod directories and podsup's state", EnvVars: envVar("root-dir")},
		&cli.StringFlag{Name: "seccomp-profile-root", Value: runtime.DefaultSeccompDir, Usage: "`DIR` of Localhost seccomp profiles (localhostProfile is a path under it); the kubelet's by default, so profiles of a migrated node are found", EnvVars: envVar("seccomp-profile-root")},
		&cli.StringFlag{Name: "log-dir", Value: "/var/log/pods", Usage: "`DIR` for container logs", EnvVars: envVar("log-dir")},
		&cli.StringFlag{Name: "containerd-address", Aliases: []string{"container-runtime-endpoint"}, Value: "/run/containerd/containerd.sock", Usage: "containerd's socket (a unix:// prefix, as kubeadm writes it, is allowed)", EnvVars: envVar("containerd-address")},
		&cli.StringFlag{Name: "containerd-namespace", Value: "podsup", Usage: "containerd namespace for podsup's containers and images", EnvVars: envVar("containerd-namespace")},
		&cli.StringFlag{Name: "read-only-address", Value: "127.0.0.1:10255", Usage: "address of the unauthenticated read-only API; empty disables", EnvVars: envVar("read-only-address")},
		&cli.StringFlag{Name: "healthz-address", Value: "127.0.0.1:10248", Usage: "address of /healthz; empty disables", EnvVars: envVar("healthz-address")},
		&cli.IntFlag{Name: "verbosity", Aliases: []string{"v"}, Value: 0, Usage: "log detail: 0 info, 1 debug, 2 debug with source lines", EnvVars: envVar("verbosity")},
		&cli.StringFlag{Name: "pod-infra-container-image", Usage: "pause image `REF` instead of the one podsup builds itself", EnvVars: envVar("pod-infra-container-image")},
		&cli.StringFlag{Name: "cgroup-driver", Value: "cgroupfs", Usage: "cgroupfs or systemd; containerd 2 overrides it with the driver its CRI runtime is configured with", EnvVars: envVar("cgroup-driver")},
		&cli.StringFlag{Name: "container-log-max-size", Value: "10Mi", Usage: "size at which a container log is rotated", EnvVars: envVar("container-log-max-size")},
		&cli.IntFlag{Name: "container-log-max-files", Value: 5, Usage: "log files kept per container instance, the current one included", EnvVars: envVar("container-log-max-files")},
		&cli.DurationFlag{Name: "restart-backoff-initial", Value: 10 * time.Second, Usage: "first crash-loop back-off, doubled on each crash", EnvVars: envVar("restart-backoff-initial")},
		&cli.DurationFlag{Name: "restart-backoff-max", Value: 300 * time.Second, Usage: "longest crash-loop back-off", EnvVars: envVar("restart-backoff-max")},
		&cli.StringFlag{Name: "node-ip", Usage: "the node's IP, reported as hostIP; default: the address of the interface of the default route", EnvVars: envVar("node-ip")},
		&cli.StringFlag{Name: "resolv-conf", Value: "/etc/resolv.conf", Usage: "resolver configuration pods with dnsPolicy Default get", EnvVars: envVar("resolv-conf")},
		&cli.StringSliceFlag{Name: "cluster-dns", Usage: "nameserver `IP` for ClusterFirst pods (repeatable); without one they get the host's resolver", EnvVars: envVar("cluster-dns")},
		&cli.StringFlag{Name: "cluster-domain", Value: "cluster.local", Usage: "DNS domain of the cluster, for search paths", EnvVars: envVar("cluster-domain")},
		&cli.StringFlag{Name: "cni-conf-dir", Value: cni.DefaultConfDir, Usage: "`DIR` whose first network configuration list pods use; with none, podsup's built-in bridge network", EnvVars: envVar("cni-conf-dir")},
		&cli.StringFlag{Name: "cni-bin-dir", Value: strings.Join(cni.DefaultBinDirs(), ":"), Usage: "colon-separated directories of CNI plugins", EnvVars: envVar("cni-bin-dir")},
		&cli.StringFlag{Name: "pod-cidr", Value: cni.DefaultPodCIDR, Usage: "address range of the built-in network (unused with a configuration in --cni-conf-dir)", EnvVars: envVar("pod-cidr")},
		&cli.DurationFlag{Name: "sync-frequency", Value: time.Minute, Usage: "how often every pod is looked at when nothing happens to it", EnvVars: envVar("sync-frequency")},
		&cli.StringSliceFlag{Name: "allowed-unsafe-sysctls", Usage: "sysctls pods may set beyond the kubelet's safe ones: names, or `PATTERN`s ending in * such as 'kernel.msg*,net.core.*' (comma-separated or repeated); only namespaced ones", EnvVars: envVar("allowed-unsafe-sysctls")},
		&cli.BoolFlag{Name: "profiling", Usage: "serve Go's pprof profiles under /debug/pprof on the read-only address", EnvVars: envVar("profiling")},
	}, append(mirrorFlags(), apiFlags()...)...)
}

// configFrom reads and checks the flags.
func configFrom(c *cli.Context) (*Config, error) {
	cfg := &Config{
		IgnoredConfigFields: ignoredConfigFields(c),
		Manifests:           c.String("manifests"),
		ManifestURL:         c.String("manifest-url"),
		ManifestURLHeaders:  http.Header{},
		ManifestURLCA:       c.String("manifest-url-ca"),
		FileCheckFrequency:  c.Duration("file-check-frequency"),
		HTTPCheckFrequency:  c.Duration("http-check-frequency"),
		NodeName:            c.String("node-name"),
		RootDir:             c.String("root-dir"),
		LogDir:              c.String("log-dir"),
		SeccompDir:          c.String("seccomp-profile-root"),
		ContainerdAddress:   strings.TrimPrefix(c.String("containerd-address"), "unix://"),
		ContainerdNS:        c.String("containerd-namespace"),
		ReadOnlyAddress:     c.String("read-only-address"),
		HealthzAddress:      c.String("healthz-address"),
		Verbosity:           c.Int("verbosity"),
		PauseImage:          c.String("pod-infra-container-image"),
		CgroupDriver:        c.String("cgroup-driver"),
		LogMaxFiles:         c.Int("container-log-max-files"),
		BackoffInitial:      c.Duration("restart-backoff-initial"),
		BackoffMax:          c.Duration("restart-backoff-max"),
		NodeIP:              c.String("node-ip"),
		ResolvConf:          c.String("resolv-conf"),
		ClusterDNS:          c.StringSlice("cluster-dns"),
		ClusterDomain:       c.String("cluster-domain"),
		Profiling:           c.Bool("profiling"),
		CNIConfDir:          c.String("cni-conf-dir"),
		CNIBinDirs:          filepath.SplitList(c.String("cni-bin-dir")),
		PodCIDR:             c.String("pod-cidr"),
		SyncFrequency:       c.Duration("sync-frequency"),
	}
	if cfg.SyncFrequency < time.Second {
		return nil, fmt.Errorf("--sync-frequency %s: must be at least 1s", cfg.SyncFrequency)
	}
	var err error
	var unsafe []string // comma-separated, as the kubelet takes them, or repeated
	for _, v := range c.StringSlice("allowed-unsafe-sysctls") {
		unsafe = append(unsafe, strings.FieldsFunc(v, func(r rune) bool { return r == ',' })...)
	}
	if cfg.Sysctls, err = podspec.NewSysctlAllowlist(unsafe); err != nil {
		return nil, fmt.Errorf("--allowed-unsafe-sysctls: %w", err)
	}
	if cfg.Mirror, err = mirrorConfigFrom(c); err != nil {
		return nil, err
	}
	size, err := resource.ParseQuantity(c.String("container-log-max-size"))
	if err != nil || size.Value() < 1024 {
		return nil, fmt.Errorf("--container-log-max-size %q: want a size of at least 1Ki, such as 10Mi", c.String("container-log-max-size"))
	}
	cfg.LogMaxSize = size.Value()
	if cfg.LogMaxFiles < 2 {
		return nil, fmt.Errorf("--container-log-max-files %d: must be at least 2", cfg.LogMaxFiles)
	}
	if cfg.CgroupDriver != "cgroupfs" && cfg.CgroupDriver != "systemd" {
		return nil, fmt.Errorf("--cgroup-driver %q: want cgroupfs or systemd", cfg.CgroupDriver)
	}
	if cfg.BackoffInitial <= 0 || cfg.BackoffMax < cfg.BackoffInitial {
		return nil, fmt.Errorf("--restart-backoff-initial %s and --restart-backoff-max %s: want 0 < initial <= max", cfg.BackoffInitial, cfg.BackoffMax)
	}
	if cfg.NodeIP != "" {
		if _, err := netip.ParseAddr(cfg.NodeIP); err != nil {
			return nil, fmt.Errorf("--node-ip %q: not an IP address", cfg.NodeIP)
		}
	}
	for _, ip := range cfg.ClusterDNS {
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("--cluster-dns %q: not an IP address", ip)
		}
	}
	for _, h := range c.StringSlice("manifest-url-header") {
		name, value, err := manifest.ParseHeader(h)
		if err != nil {
			return nil, fmt.Errorf("--manifest-url-header: %w", err)
		}
		cfg.ManifestURLHeaders.Add(name, value)
	}
	if msgs := validation.IsDNS1123Subdomain(cfg.NodeName); len(msgs) > 0 {
		return nil, fmt.Errorf("--node-name %q: %s", cfg.NodeName, strings.Join(msgs, "; "))
	}
	for flag, d := range map[string]time.Duration{"file-check-frequency": cfg.FileCheckFrequency, "http-check-frequency": cfg.HTTPCheckFrequency} {
		if d < 100*time.Millisecond {
			return nil, fmt.Errorf("--%s %s: must be at least 100ms", flag, d)
		}
	}
	if cfg.API, err = apiConfigFrom(c); err != nil {
		return nil, err
	}
	if cfg.Manifests == "" && cfg.ManifestURL == "" && cfg.API.Address == "" && cfg.API.AdminSocket == "" {
		return nil, fmt.Errorf("no manifest source: set --manifests or --manifest-url, or serve the push API with --address or --admin-socket")
	}
	if len(cfg.ManifestURLHeaders) > 0 && cfg.ManifestURL == "" {
		return nil, fmt.Errorf("--manifest-url-header given without --manifest-url")
	}
	for _, d := range [][2]string{{"root-dir", cfg.RootDir}, {"log-dir", cfg.LogDir}, {"seccomp-profile-root", cfg.SeccompDir}} {
		if !strings.HasPrefix(d[1], "/") {
			return nil, fmt.Errorf("--%s %q: must be an absolute path", d[0], d[1])
		}
	}
	if err := identifiers.Validate(cfg.ContainerdNS); err != nil {
		return nil, fmt.Errorf("--containerd-namespace: %w", err)
	}
	if cfg.Images, err = imageConfigFrom(c); err != nil {
		return nil, err
	}
	if cfg.Eviction, err = evictionConfigFrom(c); err != nil {
		return nil, err
	}
	return cfg, nil
}
