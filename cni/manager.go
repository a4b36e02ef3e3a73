package cni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Manager gives pods their network namespaces and CNI networks. Its methods
// may be called concurrently; calls for one sandbox run one at a time.
type Manager struct {
	opts     *options
	log      *slog.Logger
	cni      *libcni.CNIConfig
	podCIDR  netip.Prefix
	loopback *libcni.NetworkConfigList
	locks    keyedMutex // by sandbox ID

	mu      sync.Mutex
	net     *network           // guarded by mu; the network new pods get
	results map[string]*Result // guarded by mu; set up by this manager and not torn down since
}

// New returns a manager. It reads the configuration directory and fails on
// a configuration it cannot parse, naming the file, or on a bad pod CIDR; it
// does not touch the root directory until a pod is set up. It first waits
// for plugins a previous podsup left running to finish.
func New(opts ...Option) (*Manager, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	podCIDR, err := parsePodCIDR(o.podCIDR)
	if err != nil {
		return nil, err
	}
	lo, err := loopbackList()
	if err != nil {
		return nil, err
	}
	n, err := loadNetwork(o, podCIDR)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		opts:     o,
		log:      o.log.With("component", "cni"),
		cni:      libcni.NewCNIConfigWithCacheDir(o.binDirs, o.cacheDir(), newTimedExec(o.pluginTimeout, o.clock)),
		podCIDR:  podCIDR,
		loopback: lo,
		net:      n,
		results:  map[string]*Result{},
	}
	m.logNetwork(n)
	m.waitForStrayPlugins("/proc", o.pluginTimeout)
	return m, nil
}

// Network describes the network new pods get, for the status page and logs.
func (m *Manager) Network() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.net.desc
}

func (m *Manager) logNetwork(n *network) {
	if n.builtin {
		m.log.Info("no CNI network configuration; using the built-in default network",
			"confDir", m.opts.confDir, "network", n.desc, "bridge", m.opts.bridge)
		return
	}
	m.log.Info("using CNI network", "network", n.list.Name, "source", n.desc)
}

// currentNetwork is the network for a new pod: the loaded one, or the
// directory's again when it changed since.
func (m *Manager) currentNetwork() (*network, error) {
	_, fp, err := configFiles(m.opts.confDir)
	m.mu.Lock()
	cur := m.net
	m.mu.Unlock()
	if err == nil && fp == cur.fingerprint {
		return cur, nil
	}
	n, err := loadNetwork(m.opts, m.podCIDR)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.net = n
	m.mu.Unlock()
	m.log.Info("CNI configuration directory changed; new pods get the network it now holds", "was", cur.desc)
	m.logNetwork(n)
	return n, nil
}

func (m *Manager) netnsPath(sandboxID string) string {
	return filepath.Join(m.opts.netnsDir(), sandboxID)
}

// usernsPath pins the user namespace that owns the network namespace of a
// sandbox of a pod with hostUsers: false.
func (m *Manager) usernsPath(sandboxID string) string {
	return filepath.Join(m.opts.usernsDir(), sandboxID)
}

// SetUp creates the pod's network namespace, bind-mounted at
// <root>/netns/<SandboxID>, brings lo up in it and runs CNI ADD for the
// network. On failure it undoes what it did (CNI DEL, namespace removal) and
// returns an error wrapping ErrNetworkSetup that names the plugin and says
// why; if the undo itself fails the namespace is kept, so that TearDown or
// GC can finish the job, and the error says so. For a sandbox already set up
// it returns the cached result, once the plugins' CNI CHECK confirms that
// the network is still there: a TearDown cut short (cancelled, or podsup
// killed) may have deleted the pod's interface and left the cache, and such
// a sandbox is released and set up afresh.
func (m *Manager) SetUp(ctx context.Context, p PodNetwork) (_ *Result, retErr error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	unlock := m.locks.lock(p.SandboxID)
	defer unlock()
	log := m.log.With("pod", p.pod(), "sandbox", p.SandboxID)
	fail := func(err error) error { return fmt.Errorf("%w for pod %s: %w", ErrNetworkSetup, p.pod(), err) }
	nsPath := m.netnsPath(p.SandboxID)

	if res, err := m.cachedResult(p.SandboxID); err == nil && m.opts.ns.valid(nsPath) &&
		(p.UserNS == nil || m.opts.ns.valid(m.usernsPath(p.SandboxID))) {
		if p.UserNS != nil {
			res.UserNS = m.usernsPath(p.SandboxID)
		}
		targets, err := m.cachedTargets(p.SandboxID, nsPath)
		if err == nil {
			err = m.check(ctx, targets)
		}
		if err == nil {
			m.remember(p.SandboxID, res)
			return res.clone(), nil
		}
		if ctx.Err() != nil {
			return nil, fail(err)
		}
		log.Info("pod network of an earlier setup is incomplete; setting it up again", "err", err)
		// What the DEL below cannot find without the interface.
		for _, t := range targets {
			if t.list.Name != loopbackName {
				m.dropMasquerade(ctx, log, t.list.Name, p.SandboxID)
			}
		}
	}
	// Whatever is there is left from an attempt that did not finish (podsup
	// killed mid-setup) or from before a reboot, which took the namespace.
	if err := m.release(ctx, p.SandboxID, p.pod()); err != nil {
		return nil, fail(fmt.Errorf("clean up an earlier attempt: %w", err))
	}
	n, err := m.currentNetwork()
	if err != nil {
		return nil, fail(err)
	}
	// A missing plugin is found before anything is made: its DEL could not
	// run either, and the rollback would strand what the plugins before it
	// added.
	if err := m.findPlugins(m.loopback, n.list); err != nil {
		return nil, fail(err)
	}

	start := m.opts.clock.Now()
	usernsPath := ""
	if p.UserNS != nil {
		usernsPath = m.usernsPath(p.SandboxID)
	}
	if err := m.opts.ns.create(nsPath, usernsPath, p.UserNS); err != nil {
		return nil, fail(err)
	}
	keepNetNS := false // once a DEL failed: the namespace marks the sandbox for TearDown or GC
	defer m.undo(&retErr, log, "remove the network namespace", func(context.Context) error {
		if keepNetNS {
			return errors.New("kept for a later TearDown or GC to finish")
		}
		return errors.Join(m.opts.ns.remove(nsPath), m.opts.ns.remove(m.usernsPath(p.SandboxID)))
	})
	if p.Made != nil {
		p.Made(nsPath, usernsPath)
	}
	del := func(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) func(context.Context) error {
		return func(ctx context.Context) error {
			err := m.cni.DelNetworkList(ctx, list, rt)
			keepNetNS = keepNetNS || err != nil
			return err
		}
	}

	// Each undo is deferred before its ADD: an ADD that fails may have done
	// part of its work (the bridge plugin succeeded, portmap did not).
	loRT := loopbackConf(p, nsPath)
	defer m.undo(&retErr, log, "delete network "+loopbackName, del(m.loopback, loRT))
	if _, err := m.cni.AddNetworkList(ctx, m.loopback, loRT); err != nil {
		return nil, fail(err)
	}
	rt := runtimeConf(p, nsPath)
	defer m.undo(&retErr, log, "delete network "+n.list.Name, del(n.list, rt))
	raw, err := m.cni.AddNetworkList(ctx, n.list, rt)
	if err != nil {
		return nil, fail(err)
	}
	res, err := toResult(raw, nsPath)
	if err != nil {
		return nil, fail(fmt.Errorf("network %s: %w", n.list.Name, err))
	}
	res.UserNS = usernsPath
	if len(res.IPs) == 0 {
		log.Warn("network gave the pod no IP address", "network", n.list.Name)
	}
	m.remember(p.SandboxID, res)
	log.Info("pod network set up", "network", n.list.Name, "ips", res.IPs, "took", m.opts.clock.Since(start))
	return res.clone(), nil
}

// check runs CNI CHECK on the networks libcni cached an ADD of for a
// sandbox (cachedTargets). A network that cannot be checked (a configuration older than CNI
// 0.4.0, or one that disables CHECK) counts as not there: setting it up
// again costs an address, trusting a half-deleted one costs the pod.
func (m *Manager) check(ctx context.Context, targets []delTarget) error {
	if !hasPodNetwork(targets) {
		return errors.New("no pod network in the CNI cache")
	}
	for _, t := range targets {
		if t.list.DisableCheck {
			return fmt.Errorf("network %s disables CNI CHECK", t.list.Name)
		}
		if err := m.cni.CheckNetworkList(ctx, t.list, t.rt); err != nil {
			return fmt.Errorf("network %s: %w", t.list.Name, err)
		}
	}
	return nil
}

// findPlugins checks that every plugin of the lists is installed.
func (m *Manager) findPlugins(lists ...*libcni.NetworkConfigList) error {
	for _, list := range lists {
		for _, p := range list.Plugins {
			if _, err := invoke.FindInPath(p.Network.Type, m.opts.binDirs); err != nil {
				return fmt.Errorf("network %s: plugin type=%q: %w", list.Name, p.Network.Type, err)
			}
		}
	}
	return nil
}

// undo runs one step of a failed SetUp's rollback on a fresh context, as the
// caller's may be what ended the setup. A step that fails is logged and
// added to the error.
func (m *Manager) undo(errp *error, log *slog.Logger, what string, step func(context.Context) error) {
	if *errp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := step(ctx); err != nil {
		log.Error("rollback of failed network setup incomplete", "step", what, "err", err)
		*errp = fmt.Errorf("%w; and could not %s: %v", *errp, what, err)
	}
}

// TearDown runs CNI DEL for each network the sandbox was added to, with the
// configuration and result libcni cached then, and unmounts and removes its
// namespace. Tearing down what is already gone is success. When a DEL fails
// the namespace is kept and the error returned: call again.
func (m *Manager) TearDown(ctx context.Context, sandboxID string) error {
	if err := validateSandboxID(sandboxID); err != nil {
		return err
	}
	unlock := m.locks.lock(sandboxID)
	defer unlock()
	if err := m.release(ctx, sandboxID, ""); err != nil {
		return fmt.Errorf("tear down network of sandbox %s: %w", sandboxID, err)
	}
	return nil
}

// Status returns the result of a sandbox that is set up, from memory or
// from libcni's cache (after a restart), or an error wrapping ErrNotFound.
func (m *Manager) Status(_ context.Context, sandboxID string) (*Result, error) {
	if err := validateSandboxID(sandboxID); err != nil {
		return nil, err
	}
	m.mu.Lock()
	res, ok := m.results[sandboxID]
	m.mu.Unlock()
	if ok {
		return res.clone(), nil
	}
	return m.cachedResult(sandboxID)
}

// cachedResult reads the sandbox's result from libcni's cache.
func (m *Manager) cachedResult(sandboxID string) (*Result, error) {
	atts, err := m.cni.GetCachedAttachments(sandboxID)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: read CNI cache: %w", sandboxID, err)
	}
	for _, a := range atts {
		if a.Network == loopbackName || a.IfName != podIfName {
			continue
		}
		list, err := m.cachedList(a)
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", sandboxID, err)
		}
		raw, err := m.cni.GetNetworkListCachedResult(list, &libcni.RuntimeConf{ContainerID: sandboxID, IfName: a.IfName})
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: cached result of network %s: %w", sandboxID, a.Network, err)
		}
		if raw == nil {
			continue
		}
		nsPath := a.NetNS
		if nsPath == "" {
			nsPath = m.netnsPath(sandboxID)
		}
		return toResult(raw, nsPath)
	}
	return nil, fmt.Errorf("sandbox %s: %w", sandboxID, ErrNotFound)
}

// toResult picks the pod's side out of a CNI result: the addresses of
// interfaces in the sandbox, not the host's (a bridge's gateway address).
func toResult(raw types.Result, nsPath string) (*Result, error) {
	r, err := types100.NewResultFromResult(raw)
	if err != nil {
		return nil, fmt.Errorf("convert result: %w", err)
	}
	res := &Result{NetNS: nsPath, Interface: podIfName}
	for _, ip := range r.IPs {
		if i := ip.Interface; i != nil && *i >= 0 && *i < len(r.Interfaces) {
			if r.Interfaces[*i].Sandbox == "" {
				continue
			}
			res.Interface = r.Interfaces[*i].Name
		}
		res.IPs = append(res.IPs, ip.Address.IP)
	}
	return res, nil
}

func (m *Manager) remember(sandboxID string, res *Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.results[sandboxID] = res.clone()
}

func (m *Manager) forget(sandboxID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.results, sandboxID)
}

// ownedHere reports whether this manager set the sandbox up and has not
// torn it down.
func (m *Manager) ownedHere(sandboxID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.results[sandboxID]
	return ok
}
