// Package cni gives each pod that is not hostNetwork a network namespace of
// its own and a real network through the CNI plugins (libcni).
//
// # Which network
//
// The first network configuration in lexical order in the configuration
// directory (default /etc/cni/net.d) is used: a .conflist, or a single plugin
// in a .conf or .json file, which is wrapped in a list as libcni's
// ConfListFromConf does. An existing configuration always wins. With none,
// podsup uses a built-in default: a bridge (podsup0) with host-local IPAM on
// the pod CIDR (DefaultPodCIDR unless set), portmap for hostPorts, and says so
// in its log. Whatever the network, the manager also runs the loopback plugin
// on its own so that lo is up in every pod: the namespace is created here, so
// nobody else would.
//
// A configuration that cannot be parsed is an error from New that names the
// file. The directory is looked at again on every SetUp (a listing, cheap):
// when it changed, the configuration is reloaded and new pods get the new
// network; if the new first file is broken, SetUp fails with an error naming
// it (the pod stays pending and is retried) rather than quietly falling back
// to an older network or to the default. Pods already set up keep the network
// they were set up with: TearDown and GC use the configuration libcni cached
// at ADD time, so changing the directory never strands an address.
//
// # State
//
// Everything lives under the root directory (podsup's --root-dir):
//
//	<root>/netns/<sandbox ID>      the pod's network namespace, bind-mounted
//	<root>/cni/cache/results/...   libcni's cache of each ADD (config and result)
//	<root>/cni/ipam/<network>/<ip> host-local's allocations, built-in default only
//
// A namespace file is created before the first plugin runs and removed after
// the last DEL succeeded, so its presence marks a sandbox that may hold
// something. GC walks the namespaces, the cache and the built-in network's
// allocations, and releases what belongs to no live sandbox: that is what a
// podsup killed mid-setup or a machine reboot leaves behind. Allocations of a
// configuration from the directory are released through DEL only, never by
// deleting files: their host-local directory may be shared with another
// runtime using the same configuration.
//
// A plugin that is not installed is found before anything is created. One
// removed after its pods were set up makes their DEL fail: TearDown returns
// the error and keeps the namespace, and a later call (or GC) finishes once
// the plugin is back. A namespace that vanished without a reboot (unmounted
// by hand) gets DEL without a namespace: addresses and portmap's rules are
// released, but the bridge plugin finds its masquerade rules through the
// pod's interface, so those stay until the next reboot, or until the same
// sandbox is set up again or torn down: podsup then removes them itself
// (only rules whose comment names its network and that sandbox).
//
// SetUp of a sandbox libcni has a cached result for (a retry after podsup
// died between the network and the pause container) trusts the cache only
// when the plugins' CNI CHECK passes: a TearDown cut short after the bridge
// plugin deleted the interface leaves the cache, and trusting it left a
// re-added pod without a network for good.
//
// One Manager owns a root directory; two processes must not share one.
package cni
