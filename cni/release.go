package cni

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/containernetworking/cni/libcni"
)

// delTarget is one CNI DEL to run for a sandbox.
type delTarget struct {
	list *libcni.NetworkConfigList
	rt   *libcni.RuntimeConf
}

// release gives back everything a sandbox may hold: CNI DEL of each network
// libcni cached an ADD of, with the configuration of that ADD, then the
// namespace. With a namespace but no cache of the pod network (only of
// loopback, which is added first, or of nothing), an ADD was cut short
// before libcni cached it, so DEL runs with the current configuration to
// release what the plugins got. The namespace goes last and only when
// every DEL succeeded: while it is there, the sandbox is known to hold something.
// The caller holds the sandbox's lock; pod names the pod in logs when the
// caller knows it, else the cache does.
func (m *Manager) release(ctx context.Context, sandboxID, pod string) error {
	nsPath := m.netnsPath(sandboxID)
	_, err := os.Lstat(nsPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("network namespace: %w", err)
	}
	nsExists := err == nil
	// DEL gets no namespace once it is gone or no longer pins one (after a
	// reboot): plugins then release what they keep outside it, such as
	// addresses, which is what a reboot leaves behind.
	delNS := ""
	if nsExists && m.opts.ns.valid(nsPath) {
		delNS = nsPath
	}

	targets, err := m.cachedTargets(sandboxID, delNS)
	if err != nil {
		return err
	}
	if nsExists && !hasPodNetwork(targets) {
		targets = m.uncachedTargets(sandboxID, delNS)
	}
	log := m.log.With("sandbox", sandboxID)
	if pod == "" && len(targets) > 0 {
		pod = podOf(targets[0].rt.Args)
	}
	if pod != "" {
		log = log.With("pod", pod)
	}
	var errs []error
	for _, t := range targets {
		err := m.cni.DelNetworkList(ctx, t.list, t.rt)
		if err != nil && t.list.Name != loopbackName {
			// Perhaps "chain busy": a masquerade rule the bridge plugin
			// no longer finds, its interface gone before it (a DEL cut
			// short). Once those are gone the DEL goes through.
			if n := m.dropMasquerade(ctx, log, t.list.Name, sandboxID); n > 0 {
				err = m.cni.DelNetworkList(ctx, t.list, t.rt)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if nsExists {
		if err := m.opts.ns.remove(nsPath); err != nil {
			return err
		}
	}
	// The user namespace that owned it, for a pod with hostUsers: false.
	if err := m.opts.ns.remove(m.usernsPath(sandboxID)); err != nil {
		return err
	}
	m.forget(sandboxID)
	if len(targets) > 0 {
		log.Info("pod network torn down", "networks", len(targets))
	}
	return nil
}

// hasPodNetwork reports whether targets hold a network besides loopback.
func hasPodNetwork(targets []delTarget) bool {
	for _, t := range targets {
		if t.list.Name != loopbackName {
			return true
		}
	}
	return false
}

// podOf names the pod of CNI args, or is empty.
func podOf(args [][2]string) string {
	var namespace, name string
	for _, a := range args {
		switch a[0] {
		case "K8S_POD_NAMESPACE":
			namespace = a[1]
		case "K8S_POD_NAME":
			name = a[1]
		}
	}
	if name == "" {
		return ""
	}
	return namespace + "/" + name
}

// cachedTargets are the DELs for what libcni cached of the sandbox, the pod
// network before loopback (the reverse of ADD).
func (m *Manager) cachedTargets(sandboxID, netns string) ([]delTarget, error) {
	atts, err := m.cni.GetCachedAttachments(sandboxID)
	if err != nil {
		return nil, fmt.Errorf("read CNI cache: %w", err)
	}
	sort.SliceStable(atts, func(i, j int) bool { return atts[i].Network != loopbackName && atts[j].Network == loopbackName })
	var targets []delTarget
	for _, a := range atts {
		list, err := m.cachedList(a)
		if err != nil {
			return nil, err
		}
		targets = append(targets, delTarget{list: list, rt: &libcni.RuntimeConf{
			ContainerID:    a.ContainerID,
			NetNS:          netns,
			IfName:         a.IfName,
			Args:           a.CniArgs,
			CapabilityArgs: a.CapabilityArgs,
		}})
	}
	return targets, nil
}

// cachedList is the configuration a network was added with. A list whose
// plugins libcni did not inline (files in a directory beside the list) is
// not in the cache whole; the loaded one stands in when it has that name.
func (m *Manager) cachedList(a *libcni.NetworkAttachment) (*libcni.NetworkConfigList, error) {
	if a.Network == loopbackName {
		return m.loopback, nil
	}
	list, err := libcni.NetworkConfFromBytes(a.Config)
	if err == nil && len(list.Plugins) > 0 {
		return list, nil
	}
	m.mu.Lock()
	cur := m.net.list
	m.mu.Unlock()
	if cur.Name == a.Network {
		return cur, nil
	}
	if err == nil {
		err = errors.New("no plugins")
	}
	return nil, fmt.Errorf("cached configuration of network %s for %s: %w", a.Network, a.ContainerID, err)
}

// uncachedTargets are the DELs for a sandbox whose ADD never finished: the
// current network and loopback, with the only pod detail known here.
func (m *Manager) uncachedTargets(sandboxID, netns string) []delTarget {
	m.mu.Lock()
	cur := m.net.list
	m.mu.Unlock()
	args := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_INFRA_CONTAINER_ID", sandboxID}}
	return []delTarget{
		{list: cur, rt: &libcni.RuntimeConf{ContainerID: sandboxID, NetNS: netns, IfName: podIfName, Args: args}},
		{list: m.loopback, rt: &libcni.RuntimeConf{ContainerID: sandboxID, NetNS: netns, IfName: loopbackIfName, Args: args}},
	}
}
