package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
)

const (
	// builtinName is the network name of the built-in default, and so the
	// directory of its allocations under <root>/cni/ipam.
	builtinName = "podsup"
	// builtinCNIVersion is the spec version of the built-in lists. 0.4.0
	// has all they need (cached results for DEL) and is spoken by every
	// plugin release since 0.8, including Ubuntu 22.04's 0.9.1, which does
	// not know 1.0.0.
	builtinCNIVersion = "0.4.0"
	// loopbackName is the network name of the lone loopback list.
	loopbackName = "podsup-loopback"
	// podIfName is the pod's interface, as the kubelet names it.
	podIfName = "eth0"
	// loopbackIfName is what libcni caches the loopback attachment under.
	loopbackIfName = "lo"
)

// network is a network configuration list and where it came from.
type network struct {
	list        *libcni.NetworkConfigList
	desc        string // what Network returns
	builtin     bool
	fingerprint string // of the configuration directory it was chosen from
}

// loadNetwork returns the network new pods get: the first configuration in
// the directory, or the built-in default when there is none.
func loadNetwork(o *options, podCIDR netip.Prefix) (*network, error) {
	files, fp, err := configFiles(o.confDir)
	if err != nil {
		return nil, &ConfigError{Subject: o.confDir, Err: err}
	}
	if len(files) == 0 {
		n, err := builtinNetwork(o, podCIDR)
		if err != nil {
			return nil, err
		}
		n.fingerprint = fp
		return n, nil
	}
	list, err := readConfList(files[0])
	if err != nil {
		return nil, &ConfigError{Subject: files[0], Err: err}
	}
	return &network{list: list, desc: "from " + files[0], fingerprint: fp}, nil
}

// isConfigName reports whether a directory entry may be a configuration:
// what libcni's loaders accept, less dotfiles (editor swap files).
func isConfigName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch filepath.Ext(name) {
	case ".conflist", ".conf", ".json":
		return true
	}
	return false
}

// configFiles lists the candidate configuration files of dir in lexical
// order, with a fingerprint that changes when one is added, removed,
// replaced or written. A missing directory has none.
func configFiles(dir string) (files []string, fingerprint string, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var fp strings.Builder
	for _, e := range entries { // sorted by name
		if !isConfigName(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := os.Stat(path) // follows symlinks, as libcni does
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing, or a dangling link
		}
		if err != nil {
			return nil, "", err
		}
		if info.IsDir() {
			continue
		}
		var ino uint64
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(&fp, "%s %d %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano(), ino)
		files = append(files, path)
	}
	return files, fp.String(), nil
}

// readConfList loads one configuration file as a list. A .conflist, or any
// file with a "plugins" array, is a list; a .conf or .json with a single
// plugin is wrapped in a list of its own.
func readConfList(path string) (*libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	var list *libcni.NetworkConfigList
	if _, isList := probe["plugins"]; isList || filepath.Ext(path) == ".conflist" {
		list, err = libcni.NetworkConfFromFile(path)
	} else {
		var conf *libcni.PluginConfig
		if conf, err = libcni.NetworkPluginConfFromBytes(data); err == nil {
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		return nil, err
	}
	return list, checkList(list)
}

// checkList rejects what parses but would fail every pod, or worse, fail
// every teardown: libcni needs a version to find the cached result on DEL.
func checkList(list *libcni.NetworkConfigList) error {
	if err := utils.ValidateNetworkName(list.Name); err != nil {
		return fmt.Errorf("name %q: %s", list.Name, err.Msg)
	}
	if list.Name == loopbackName {
		return fmt.Errorf("name %q: reserved for podsup's own loopback network", list.Name)
	}
	if list.CNIVersion == "" {
		return errors.New(`cniVersion: required; set the CNI spec version the plugins speak, such as "0.4.0" or "1.0.0"`)
	}
	if _, _, _, err := version.ParseVersion(list.CNIVersion); err != nil {
		return fmt.Errorf("cniVersion %q: %w", list.CNIVersion, err)
	}
	if len(list.Plugins) == 0 {
		return errors.New("plugins: need at least one")
	}
	return nil
}

// builtinNetwork is the network of an edge box with no CNI configuration: a
// bridge that is the pods' gateway and masquerades their traffic, host-local
// addresses from the pod CIDR kept under the root directory (where GC can
// count and release them), and portmap for hostPorts. Portmap's SNAT makes
// a hostPort answer on every host address, 127.0.0.1 included (it sets
// route_localnet on the bridge and masquerades local sources), and from pods,
// their own included, which hairpin mode lets back in through the bridge.
func builtinNetwork(o *options, podCIDR netip.Prefix) (*network, error) {
	defaultRoute := "0.0.0.0/0"
	if podCIDR.Addr().Is6() {
		defaultRoute = "::/0"
	}
	conf := map[string]any{
		"cniVersion": builtinCNIVersion,
		"name":       builtinName,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      o.bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": podCIDR.String()}}},
					"routes":  []map[string]string{{"dst": defaultRoute}},
					"dataDir": o.ipamDir(),
				},
			},
			map[string]any{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
				"snat":         true,
			},
		},
	}
	data, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("built-in network: %w", err)
	}
	return &network{
		list:    list,
		desc:    fmt.Sprintf("built-in default %s (%s)", builtinName, podCIDR),
		builtin: true,
	}, nil
}

// loopbackList brings lo up in a pod's namespace. It runs for every network,
// on its own, because the namespace is podsup's and most configurations
// leave lo to the runtime.
func loopbackList() (*libcni.NetworkConfigList, error) {
	return libcni.NetworkConfFromBytes([]byte(`{"cniVersion":"` + builtinCNIVersion +
		`","name":"` + loopbackName + `","plugins":[{"type":"loopback"}]}`))
}
