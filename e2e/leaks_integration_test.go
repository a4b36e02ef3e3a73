//go:build integration

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd"

	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

// hostLeaks reports what the host holds beyond what the live pods need:
// mounts under the root dir, network namespaces, pod and log directories
// and cgroups, and, when the env has a test network of its own, veths
// on its bridge, host-local allocations and the bridge plugin's masquerade
// rules. What a pod needs is read from
// its sandbox's labels in containerd; leaks checks containerd itself.
func (e *env) hostLeaks(names map[string]bool, cs []containerd.Container, errorf func(format string, args ...any)) {
	ids := map[string]bool{}
	netns := map[string]string{} // pinned namespace path -> sandbox ID
	for _, c := range cs {
		ids[c.ID()] = true
		labels, err := c.Labels(e.ctx)
		if err != nil || labels[runtime.LabelKind] != "sandbox" {
			continue
		}
		if p := labels[runtime.LabelNetNS]; p != "" && labels[runtime.LabelHostNetwork] != "true" {
			netns[p] = c.ID()
		}
	}
	hashes := map[string]bool{}
	for n := range names {
		hashes[runtime.PodHash("default/"+n+"-node1")] = true
	}

	mounts := volume.MountsUnder(e.root)
	seen := map[string]int{}
	for _, m := range mounts {
		seen[m]++
		rel, _ := filepath.Rel(e.root, m)
		dir, rest, _ := strings.Cut(rel, string(filepath.Separator))
		switch {
		case rel == "netns": // the shared mount namespaces are pinned under
		case dir == "netns" && netns[m] != "":
		case dir == "pods" && hashes[strings.SplitN(rest, string(filepath.Separator), 2)[0]]:
		default:
			errorf("mount %s belongs to no live pod", m)
		}
	}
	for m, n := range seen {
		if n > 1 {
			errorf("%s is mounted %d times", m, n)
		}
	}
	files, _ := os.ReadDir(filepath.Join(e.root, "netns"))
	for _, f := range files {
		if p := filepath.Join(e.root, "netns", f.Name()); netns[p] == "" {
			errorf("network namespace %s belongs to no sandbox", p)
		}
	}
	dirs, _ := os.ReadDir(filepath.Join(e.root, "pods"))
	for _, d := range dirs {
		if !hashes[d.Name()] {
			errorf("pod directory %s belongs to no desired pod", d.Name())
		}
	}
	logs, _ := os.ReadDir(e.logs) // <namespace>_<pod>_<uid>
	for _, d := range logs {
		if parts := strings.Split(d.Name(), "_"); len(parts) != 3 || !names[strings.TrimSuffix(parts[1], "-node1")] {
			errorf("log directory %s belongs to no desired pod", d.Name())
		}
	}

	// cgroupfs: /sys/fs/cgroup/<hierarchy>/<namespace>/<qos>/pod<hash>/<container ID>.
	pods, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", e.ns, "*", "pod*"))
	for _, p := range pods {
		if !hashes[strings.TrimPrefix(filepath.Base(p), "pod")] {
			errorf("cgroup %s belongs to no desired pod", p)
			continue
		}
		children, _ := os.ReadDir(p)
		for _, c := range children {
			if c.IsDir() && !ids[c.Name()] {
				errorf("cgroup %s belongs to no container", filepath.Join(p, c.Name()))
			}
		}
	}

	if net := e.network; net != nil {
		if v := net.veths(); v != len(netns) {
			errorf("%d veths on %s for %d pod network namespaces", v, net.bridge, len(netns))
		}
		owners := net.allocationOwners()
		if len(owners) != len(netns) {
			errorf("%d addresses allocated for %d pod network namespaces", len(owners), len(netns))
		}
		live := map[string]bool{}
		for _, id := range netns {
			live[id] = true
		}
		for ip, id := range owners {
			if !live[id] {
				errorf("address %s allocated to %s, which is no live sandbox", ip, id)
			}
		}
		if r := net.masqRules(); r != len(netns) {
			errorf("%d masquerade rules of network e2e-%s for %d pod network namespaces", r, net.bridge, len(netns))
		}
	}
}

// strayShims lists the containerd shims of the env's namespace that serve
// no sandbox in containerd (a pod's shim is named after its sandbox). They
// are not counted as podsup's leaks: containerd 1.6 leaves the shim of a
// task create its client abandoned (containerd/containerd#6860, #7733).
func (e *env) strayShims() []string {
	cs, err := e.client.Containers(e.ctx)
	if err != nil {
		return nil
	}
	live := map[string]bool{}
	for _, c := range cs {
		live[c.ID()] = true
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var stray []string
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, []byte("containerd-shim")) {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if i := slices.Index(args, "-namespace"); i < 0 || i+1 >= len(args) || args[i+1] != e.ns {
			continue
		}
		if i := slices.Index(args, "-id"); i >= 0 && i+1 < len(args) && !live[args[i+1]] {
			stray = append(stray, args[i+1])
		}
	}
	return stray
}

// allocationOwners maps each address host-local allocated on the network
// to the container ID it was allocated for, the first line of its file.
func (n *testNetwork) allocationOwners() map[string]string {
	dir := filepath.Join(n.ipamDir, "e2e-"+n.bridge)
	entries, _ := os.ReadDir(dir)
	out := map[string]string{}
	for _, e := range entries {
		if strings.Count(e.Name(), ".") != 3 { // an IPv4 address, not last_reserved_ip or lock
			continue
		}
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		id, _, _ := strings.Cut(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
		out[e.Name()] = strings.TrimSpace(id)
	}
	return out
}

// masqRules counts the bridge plugin's rules in the nat table's POSTROUTING
// chain for the network: one per pod, naming the network in its comment.
func (n *testNetwork) masqRules() int {
	out, _ := exec.Command("iptables", "-t", "nat", "-S", "POSTROUTING").Output()
	return strings.Count(string(out), `name: \"e2e-`+n.bridge+`\"`)
}

// shimBundleLeft reports whether the running podsup's log shows a
// container start refused because containerd kept the task bundle of a
// create whose client was killed (containerd/containerd#6860).
func (e *env) shimBundleLeft() bool {
	data, err := os.ReadFile(e.procLog.Name())
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "failed to start shim") && strings.Contains(line, "file exists") {
			return true
		}
	}
	return false
}
