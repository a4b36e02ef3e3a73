package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/mirror"
	"github.com/podsup/podsup/version"
)

// MirrorConfig is how podsup joins a cluster: the flags of the mirror
// reporter. Without a kubeconfig it joins none.
type MirrorConfig struct {
	Kubeconfig string
	// BootstrapKubeconfig, when set, gets podsup the client certificate
	// of Kubeconfig from a CertificateSigningRequest; CertDir keeps it.
	BootstrapKubeconfig   string
	CertDir               string
	RegisterNode          bool
	NodeLabels            map[string]string
	Taints                []v1.Taint
	StatusUpdateFrequency time.Duration
}

// mirrorFlags are the flags of the mirror reporter, named as the kubelet's.
func mirrorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "kubeconfig", Usage: "kubeconfig `FILE` of the apiserver to register the node and publish mirror pods to; empty: no apiserver", EnvVars: envVar("kubeconfig")},
		&cli.StringFlag{Name: "bootstrap-kubeconfig", Usage: "kubeconfig `FILE` to request a client certificate with when --kubeconfig has no valid one; podsup then writes --kubeconfig and renews the certificate", EnvVars: envVar("bootstrap-kubeconfig")},
		&cli.StringFlag{Name: "cert-dir", Usage: "`DIR` of the client certificates of --bootstrap-kubeconfig (default: <root-dir>/pki)", EnvVars: envVar("cert-dir")},
		&cli.BoolFlag{Name: "register-node", Value: true, Usage: "create the Node object when it does not exist (with --kubeconfig)", EnvVars: envVar("register-node")},
		&cli.StringSliceFlag{Name: "node-labels", Usage: "labels the node registers with, `KEY=VALUE`, comma-separated or repeated", EnvVars: envVar("node-labels")},
		&cli.StringSliceFlag{Name: "register-with-taints", Usage: "taints the node registers with, `KEY[=VALUE]:EFFECT`, comma-separated or repeated", EnvVars: envVar("register-with-taints")},
		&cli.DurationFlag{Name: "node-status-update-frequency", Value: mirror.DefaultStatusUpdateFrequency, Usage: "how often the Node's status is computed, and sent when it changed", EnvVars: envVar("node-status-update-frequency")},
	}
}

// mirrorConfigFrom reads and checks the mirror reporter's flags.
func mirrorConfigFrom(c *cli.Context) (MirrorConfig, error) {
	cfg := MirrorConfig{
		Kubeconfig:            c.String("kubeconfig"),
		BootstrapKubeconfig:   c.String("bootstrap-kubeconfig"),
		CertDir:               c.String("cert-dir"),
		RegisterNode:          c.Bool("register-node"),
		NodeLabels:            map[string]string{},
		StatusUpdateFrequency: c.Duration("node-status-update-frequency"),
	}
	if cfg.CertDir == "" {
		cfg.CertDir = filepath.Join(c.String("root-dir"), "pki")
	}
	if cfg.Kubeconfig == "" {
		for _, flag := range []string{"node-labels", "register-with-taints", "bootstrap-kubeconfig", "cert-dir"} {
			if c.IsSet(flag) {
				return cfg, fmt.Errorf("--%s given without --kubeconfig", flag)
			}
		}
	}
	if cfg.StatusUpdateFrequency < time.Second {
		return cfg, fmt.Errorf("--node-status-update-frequency %s: must be at least 1s", cfg.StatusUpdateFrequency)
	}
	for _, kv := range commaList(c.StringSlice("node-labels")) {
		key, value, ok := strings.Cut(kv, "=")
		if !ok {
			return cfg, fmt.Errorf("--node-labels %q: want KEY=VALUE", kv)
		}
		if msgs := append(validation.IsQualifiedName(key), validation.IsValidLabelValue(value)...); len(msgs) > 0 {
			return cfg, fmt.Errorf("--node-labels %q: %s", kv, strings.Join(msgs, "; "))
		}
		cfg.NodeLabels[key] = value
	}
	if err := mirror.CheckNodeLabels(cfg.NodeLabels); err != nil {
		return cfg, fmt.Errorf("--node-labels: %w", err)
	}
	for _, spec := range commaList(c.StringSlice("register-with-taints")) {
		t, err := parseTaint(spec)
		if err != nil {
			return cfg, fmt.Errorf("--register-with-taints %q: %w", spec, err)
		}
		cfg.Taints = append(cfg.Taints, t)
	}
	return cfg, nil
}

// commaList splits each value on commas, as the kubelet reads these flags
// (podsup's flags do not split, since header values may hold commas).
func commaList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// parseTaint reads a taint as the kubelet's --register-with-taints does:
// KEY[=VALUE]:EFFECT.
func parseTaint(spec string) (v1.Taint, error) {
	kv, effect, ok := strings.Cut(spec, ":")
	if !ok {
		return v1.Taint{}, fmt.Errorf("want KEY[=VALUE]:EFFECT")
	}
	key, value, _ := strings.Cut(kv, "=")
	t := v1.Taint{Key: key, Value: value, Effect: v1.TaintEffect(effect)}
	switch t.Effect {
	case v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute:
	default:
		return t, fmt.Errorf("effect %q: want NoSchedule, PreferNoSchedule or NoExecute", effect)
	}
	if msgs := append(validation.IsQualifiedName(key), validation.IsValidLabelValue(value)...); len(msgs) > 0 {
		return t, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return t, nil
}

// mirrors is the mirror reporter of a podsup run with a kubeconfig; nil,
// and doing nothing, without one.
type mirrors struct {
	r     *mirror.Reporter
	ready <-chan struct{} // closed once the client has its credentials
}

// mirrorDeps are what the reporter reads from the rest of podsup.
type mirrorDeps struct {
	log            *slog.Logger
	clock          clock.WithTicker
	events         *events.Recorder
	hostIP         string
	runtimeVersion func(ctx context.Context) (string, error)
	ready          func() error
	sourcesReady   func() bool
	pressure       func() []v1.NodeCondition
}

// newMirrors is the reporter to the apiserver of kube; nil without one.
// It makes no request: the reporter starts in the background.
func newMirrors(cfg *Config, kube *kubeClient, d mirrorDeps) (*mirrors, error) {
	if kube == nil {
		return nil, nil
	}
	mc := cfg.Mirror
	resources := nodeResources(cfg.RootDir)
	r, err := mirror.New(kube.client, cfg.NodeName,
		mirror.WithClock(d.clock), mirror.WithLogger(d.log.With("component", "mirror")), mirror.WithEvents(d.events),
		mirror.WithRegister(mc.RegisterNode), mirror.WithLabels(mc.NodeLabels), mirror.WithTaints(mc.Taints),
		mirror.WithStatusUpdateFrequency(mc.StatusUpdateFrequency),
		mirror.WithReady(d.ready), mirror.WithSourcesReady(d.sourcesReady), mirror.WithPressure(d.pressure),
		mirror.WithAddresses([]v1.NodeAddress{{Type: v1.NodeInternalIP, Address: d.hostIP}}), mirror.WithKubeletPort(cfg.API.kubeletPort()),
		mirror.WithResources(resources, resources),
		mirror.WithRuntimeVersion(d.runtimeVersion), mirror.WithVersion(version.Kubernetes()), mirror.WithAgentVersion(version.Version))
	if err != nil {
		return nil, err
	}
	d.log.Info("joining the cluster of the kubeconfig", "kubeconfig", mc.Kubeconfig, "apiserver", kube.host, "node", cfg.NodeName)
	return &mirrors{r: r, ready: kube.ready}, nil
}

// Update passes a static pod's status to the reporter; a supervisor status
// listener.
func (m *mirrors) Update(key string, pod *v1.Pod) {
	if m != nil {
		m.r.Update(key, pod)
	}
}

// Start runs the reporter in the background, owned by wg, until ctx ends,
// from when the client has its credentials: a TLS bootstrap may wait for
// an approval while the pods run.
func (m *mirrors) Start(ctx context.Context, wg *sync.WaitGroup) {
	if m == nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-m.ready:
		case <-ctx.Done():
			return
		}
		m.r.Run(ctx)
	}()
}

// nodeResources is the Node's capacity, all of it allocatable: CPUs and
// memory as the supervisor sees them, the kubelet's default of 110 pods,
// and the size of the file system of the root directory.
func nodeResources(rootDir string) v1.ResourceList {
	list := allocatable()
	list[v1.ResourcePods] = *resource.NewQuantity(mirror.DefaultMaxPods, resource.DecimalSI)
	var fs syscall.Statfs_t
	if err := syscall.Statfs(rootDir, &fs); err == nil {
		list[v1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	return list
}
