package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
)

// The user namespaces of pods with hostUsers: false, as the kubelet makes
// them: each pod gets 65536 user and group IDs of its own, at a multiple of
// 65536 above the host's first 65536 and below 2^31. The range is kept in
// the pod's directory, so the files of its volumes keep their owner across
// new sandboxes and restarts of podsup; it is free again when the
// directory goes with the pod.
const (
	userNSSize  = 65536
	userNSSlots = 1<<31/userNSSize - 1
	userNSFile  = "userns"
)

// UserNS is the ID mapping of a pod's user namespace, or nil for a pod in
// the host's. It needs containerd 2 (ID-mapped snapshots and mounts).
func (r *Runtime) UserNS(ctx context.Context, pod *v1.Pod) (*specs.LinuxIDMapping, error) {
	if pod.Spec.HostUsers == nil || *pod.Spec.HostUsers {
		return nil, nil
	}
	if err := r.requireContainerd2(ctx, "spec.hostUsers: false (user namespaces)"); err != nil {
		return nil, err
	}
	r.usernsMu.Lock()
	defer r.usernsMu.Unlock()
	dir := r.PodDir(podKey(pod))
	if base, ok := readUserNS(dir); ok {
		return idMapping(base), nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("user namespace: pod directory: %w", err)
	}
	if base, ok := readUserNS(dir); ok {
		return idMapping(base), nil
	}
	dirs, err := r.PodDirs()
	if err != nil {
		return nil, fmt.Errorf("user namespace: pod directories: %w", err)
	}
	used := map[uint32]bool{}
	for d := range dirs {
		if base, ok := readUserNS(d); ok {
			used[base] = true
		}
	}
	for slot := uint32(1); slot <= userNSSlots; slot++ {
		base := slot * userNSSize
		if used[base] {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, userNSFile), []byte(strconv.FormatUint(uint64(base), 10)+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("user namespace: record the pod's range: %w", err)
		}
		return idMapping(base), nil
	}
	return nil, fmt.Errorf("user namespace: all %d ranges of %d IDs are taken", userNSSlots, userNSSize)
}

func readUserNS(podDir string) (uint32, bool) {
	data, err := os.ReadFile(filepath.Join(podDir, userNSFile))
	if err != nil {
		return 0, false
	}
	base, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 32)
	return uint32(base), err == nil && base > 0 && base%userNSSize == 0
}

func idMapping(base uint32) *specs.LinuxIDMapping {
	return &specs.LinuxIDMapping{ContainerID: 0, HostID: base, Size: userNSSize}
}

// formatIDMapping and parseIDMapping keep a sandbox's mapping in its
// labels: "0:<host ID>:<size>".
func formatIDMapping(m *specs.LinuxIDMapping) string {
	if m == nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
}

func parseIDMapping(s string) *specs.LinuxIDMapping {
	var m specs.LinuxIDMapping
	if _, err := fmt.Sscanf(s, "%d:%d:%d", &m.ContainerID, &m.HostID, &m.Size); err != nil || m.Size == 0 {
		return nil
	}
	return &m
}

// requireContainerd2 refuses a feature containerd 1.x lacks, naming the
// daemon's version.
func (r *Runtime) requireContainerd2(ctx context.Context, feature string) error {
	v, err := r.client.Version(ctx)
	if err != nil {
		return fmt.Errorf("%s: containerd's version: %w", feature, err)
	}
	if strings.HasPrefix(strings.TrimPrefix(v.Version, "v"), "1.") {
		return fmt.Errorf("%s needs containerd 2.0 or newer; this containerd is %s", feature, v.Version)
	}
	return nil
}

// remapped asks the snapshotter for a root owned by the pod's IDs: an
// ID-mapped overlay where the kernel and containerd 2 support it.
func remapped(m *specs.LinuxIDMapping) []snapshots.Opt {
	if m == nil {
		return nil
	}
	return []snapshots.Opt{containerd.WithRemapperLabels(0, m.HostID, 0, m.HostID, m.Size)}
}
