//go:build integration

package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

// CheckNoLeaks waits until containerd, the disk and the cgroup tree hold
// exactly what the desired pods need: one sandbox and one instance per
// container, every task and snapshot belonging to one of them, one pod
// directory per pod. Pods being removed get their grace period to go.
func (e *Env) CheckNoLeaks(names map[string]bool) {
	e.t.Helper()
	for _, l := range e.LeaksAfter(names) {
		e.t.Error(l)
	}
}

// LeaksAfter waits up to Patience for Leaks to find nothing, and returns
// what it found last.
func (e *Env) LeaksAfter(names map[string]bool) []string {
	var found []string
	for start := time.Now(); time.Since(start) < Patience; time.Sleep(200 * time.Millisecond) {
		if found = e.Leaks(names); len(found) == 0 {
			return nil
		}
	}
	return found
}

// Leaks lists everything that should not be there.
func (e *Env) Leaks(names map[string]bool) []string {
	var leaks []string
	errorf := func(format string, args ...any) { leaks = append(leaks, fmt.Sprintf(format, args...)) }
	cs, err := e.Client.Containers(e.Ctx)
	if err != nil {
		return []string{err.Error()}
	}
	ids := map[string]bool{}
	perPod := map[string]map[string]int{}
	for _, c := range cs {
		labels, err := c.Labels(e.Ctx)
		if err != nil {
			errorf("%v", err)
			continue
		}
		ids[c.ID()] = true
		key := labels[runtime.LabelPodKey]
		_, name, _ := strings.Cut(key, "/")
		if !names[strings.TrimSuffix(name, "-node1")] {
			errorf("container %s of undesired pod %s", c.ID(), key)
			continue
		}
		if perPod[key] == nil {
			perPod[key] = map[string]int{}
		}
		what := labels[runtime.LabelName]
		if labels[runtime.LabelKind] == "sandbox" {
			what = "sandbox"
		}
		perPod[key][what]++
		task, err := c.Task(e.Ctx, nil)
		if err == nil {
			st, _ := task.Status(e.Ctx)
			if st.Status != containerd.Running {
				errorf("task of %s is %s", c.ID(), st.Status)
			}
		}
	}
	for key, counts := range perPod {
		for what, n := range counts {
			if n != 1 {
				errorf("pod %s has %d instances of %s, want 1", key, n, what)
			}
		}
	}
	if len(perPod) != len(names) {
		errorf("containerd holds %d pods, want %d", len(perPod), len(names))
	}
	sn := e.Client.SnapshotService(testenv.Snapshotter)
	err = sn.Walk(e.Ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted && !ids[info.Name] && !e.liveImageVolume(info.Name) {
			errorf("snapshot %s belongs to no container", info.Name)
		}
		return nil
	})
	if err != nil {
		errorf("%v", err)
	}
	dirs, _ := os.ReadDir(filepath.Join(e.Root, "pods"))
	if len(dirs) != len(names) {
		var found []string
		for _, d := range dirs {
			found = append(found, d.Name())
		}
		errorf("%d pod directories %v, want %d", len(dirs), found, len(names))
	}
	cgroups, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/memory", e.NS, "*", "pod*"))
	if len(cgroups) > len(names) {
		errorf("%d pod cgroups for %d pods: %v", len(cgroups), len(names), cgroups)
	}
	e.hostLeaks(names, cs, errorf)
	return leaks
}

// hostLeaks reports what the host holds beyond what the live pods need:
// mounts under the root dir, network namespaces, pod and log directories
// and cgroups, and, when the env has a test network of its own, veths
// on its bridge, host-local allocations and the bridge plugin's masquerade
// rules. What a pod needs is read from
// its sandbox's labels in containerd; leaks checks containerd itself.
func (e *Env) hostLeaks(names map[string]bool, cs []containerd.Container, errorf func(format string, args ...any)) {
	ids := map[string]bool{}
	netns := map[string]string{} // pinned namespace path -> sandbox ID
	for _, c := range cs {
		ids[c.ID()] = true
		labels, err := c.Labels(e.Ctx)
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

	mounts := volume.MountsUnder(e.Root)
	seen := map[string]int{}
	for _, m := range mounts {
		seen[m]++
		rel, _ := filepath.Rel(e.Root, m)
		dir, rest, _ := strings.Cut(rel, string(filepath.Separator))
		switch {
		case rel == "netns", rel == "userns": // the shared mounts namespaces are pinned under
		case dir == "netns" && netns[m] != "":
		case dir == "userns" && netns[filepath.Join(e.Root, "netns", rest)] != "": // the user namespace that owns a pod's network namespace
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
	for _, kind := range []string{"netns", "userns"} {
		files, _ := os.ReadDir(filepath.Join(e.Root, kind))
		for _, f := range files {
			if p := filepath.Join(e.Root, kind, f.Name()); netns[filepath.Join(e.Root, "netns", f.Name())] == "" {
				errorf("%s %s belongs to no sandbox", kind, p)
			}
		}
	}
	dirs, _ := os.ReadDir(filepath.Join(e.Root, "pods"))
	for _, d := range dirs {
		if !hashes[d.Name()] {
			errorf("pod directory %s belongs to no desired pod", d.Name())
		}
	}
	logs, _ := os.ReadDir(e.Logs) // <namespace>_<pod>_<uid>
	for _, d := range logs {
		if parts := strings.Split(d.Name(), "_"); len(parts) != 3 || !names[strings.TrimSuffix(parts[1], "-node1")] {
			errorf("log directory %s belongs to no desired pod", d.Name())
		}
	}

	// cgroupfs: /sys/fs/cgroup/<hierarchy>/<namespace>/<qos>/pod<hash>/<container ID>.
	pods, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", e.NS, "*", "pod*"))
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

	if net := e.Network; net != nil {
		if v := net.Veths(); v != len(netns) {
			errorf("%d veths on %s for %d pod network namespaces", v, net.Bridge, len(netns))
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
			errorf("%d masquerade rules of network e2e-%s for %d pod network namespaces", r, net.Bridge, len(netns))
		}
	}
}

// StrayShims lists the containerd shims of the env's namespace that serve
// no sandbox in containerd (a pod's shim is named after its sandbox). They
// are not counted as podsup's leaks: containerd 1.6 leaves the shim of a
// task create its client abandoned (containerd/containerd#6860, #7733).
func (e *Env) StrayShims() []string {
	cs, err := e.Client.Containers(e.Ctx)
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
		if i := slices.Index(args, "-namespace"); i < 0 || i+1 >= len(args) || args[i+1] != e.NS {
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
func (n *Network) allocationOwners() map[string]string {
	dir := filepath.Join(n.ipamDir, "e2e-"+n.Bridge)
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
func (n *Network) masqRules() int {
	out, _ := exec.Command("iptables", "-t", "nat", "-S", "POSTROUTING").Output()
	return strings.Count(string(out), `name: \"e2e-`+n.Bridge+`\"`)
}

// ShimBundleLeft reports whether the running podsup's log shows a
// container start refused because containerd kept the task bundle of a
// create whose client was killed (containerd/containerd#6860).
func (e *Env) ShimBundleLeft() bool {
	data, err := os.ReadFile(e.ProcLog.Name())
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

// liveImageVolume reports whether a snapshot is the view of an image volume
// ("imagevolume-<pod hash>-<volume>") of a pod whose directory is there.
func (e *Env) liveImageVolume(name string) bool {
	rest, ok := strings.CutPrefix(name, "imagevolume-")
	hash, _, _ := strings.Cut(rest, "-")
	if !ok || hash == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(e.Root, "pods", hash))
	return err == nil
}
