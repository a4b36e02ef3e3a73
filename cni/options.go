package cni

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of the manager's options.
const (
	// DefaultConfDir is where CNI network configurations are looked for.
	DefaultConfDir = "/etc/cni/net.d"
	// DefaultRootDir is podsup's default --root-dir.
	DefaultRootDir = "/var/lib/podsup"
	// DefaultBridge is the Linux bridge of the built-in default network.
	DefaultBridge = "podsup0"
	// DefaultPluginTimeout bounds one run of one plugin: long enough for a
	// bridge plugin waiting on a busy netlink or iptables lock, short enough
	// that a hung plugin does not hold a pod forever.
	DefaultPluginTimeout = time.Minute
	// cleanupTimeout bounds the undo of a failed SetUp, which runs on a
	// fresh context because the caller's may be what ended it.
	cleanupTimeout = 2 * time.Minute
)

// DefaultBinDirs are where plugins are looked for: the upstream location
// first, then Debian's (containernetworking-plugins installs to /usr/lib/cni).
func DefaultBinDirs() []string { return []string{"/opt/cni/bin", "/usr/lib/cni"} }

// Option configures a Manager.
type Option func(*options) error

type options struct {
	confDir       string
	binDirs       []string
	rootDir       string
	podCIDR       string
	bridge        string
	pluginTimeout time.Duration
	log           *slog.Logger
	clock         clock.WithDelayedExecution
	ns            netnsOps
}

// WithConfDir sets the CNI configuration directory (--cni-conf-dir).
func WithConfDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("CNI configuration directory: must not be empty")
		}
		o.confDir = dir
		return nil
	}
}

// WithBinDirs sets the directories searched for plugins, in order
// (--cni-bin-dir, split at colons).
func WithBinDirs(dirs []string) Option {
	return func(o *options) error {
		if len(dirs) == 0 {
			return errors.New("CNI plugin directories: need at least one")
		}
		o.binDirs = append([]string(nil), dirs...)
		return nil
	}
}

// WithRootDir sets podsup's state directory (--root-dir); the manager keeps
// its state under <root>/cni and <root>/netns.
func WithRootDir(dir string) Option {
	return func(o *options) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("root directory %q: must be an absolute path", dir)
		}
		o.rootDir = filepath.Clean(dir)
		return nil
	}
}

// WithPodCIDR sets the subnet of the built-in default network (--pod-cidr).
// It is validated by New; a configuration from the directory ignores it.
func WithPodCIDR(cidr string) Option {
	return func(o *options) error {
		o.podCIDR = cidr
		return nil
	}
}

// WithBridgeName sets the bridge of the built-in default network, so that
// tests do not share podsup0 with a running podsup.
func WithBridgeName(name string) Option {
	return func(o *options) error {
		if name == "" || len(name) > 15 {
			return fmt.Errorf("bridge name %q: must be 1 to 15 characters", name)
		}
		o.bridge = name
		return nil
	}
}

// WithPluginTimeout bounds each run of each plugin.
func WithPluginTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("plugin timeout %s: must be positive", d)
		}
		o.pluginTimeout = d
		return nil
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithClock sets the clock that times plugins (WithPluginTimeout), the wait
// for plugins a previous podsup left running, and setups in the log; tests
// pass a fake one to run a time limit out.
func WithClock(c clock.WithDelayedExecution) Option {
	return func(o *options) error {
		o.clock = c
		return nil
	}
}

// withNetNS replaces how namespaces are made, for tests without root.
func withNetNS(ns netnsOps) Option {
	return func(o *options) error {
		o.ns = ns
		return nil
	}
}

// buildOptions applies opts, then the defaults of what they left unset.
func buildOptions(opts []Option) (*options, error) {
	o := &options{}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if o.confDir == "" {
		o.confDir = DefaultConfDir
	}
	if o.binDirs == nil {
		o.binDirs = DefaultBinDirs()
	}
	if o.rootDir == "" {
		o.rootDir = DefaultRootDir
	}
	if o.podCIDR == "" {
		o.podCIDR = DefaultPodCIDR
	}
	if o.bridge == "" {
		o.bridge = DefaultBridge
	}
	if o.pluginTimeout == 0 {
		o.pluginTimeout = DefaultPluginTimeout
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.clock == nil {
		o.clock = clock.RealClock{}
	}
	if o.ns == nil {
		o.ns = &bindMounts{}
	}
	return o, nil
}

func (o *options) netnsDir() string { return filepath.Join(o.rootDir, "netns") }

// usernsDir pins the user namespaces that own the network namespaces of
// pods with hostUsers: false.
func (o *options) usernsDir() string { return filepath.Join(o.rootDir, "userns") }
func (o *options) cacheDir() string  { return filepath.Join(o.rootDir, "cni", "cache") }
func (o *options) ipamDir() string   { return filepath.Join(o.rootDir, "cni", "ipam") }
