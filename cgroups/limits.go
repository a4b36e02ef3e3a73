package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// PodLimits are the limits of a pod's own cgroup, from its pod-level
// resources (spec.resources, Kubernetes 1.34): what its containers may use
// together. A zero field sets nothing.
type PodLimits struct {
	MemoryBytes    int64
	CPUQuotaUsecs  int64 // per CPUPeriodUsecs
	CPUPeriodUsecs int64
	CPUShares      uint64
}

// ErrPodLimits is a pod whose limits the driver cannot set.
var ErrPodLimits = errors.New("pod-level resources are not supported")

// SetPodLimits makes the pod's cgroup, before its sandbox runs in it, and
// sets its limits.
func (d *cgroupfs) SetPodLimits(pod Pod, l PodLimits) error {
	return d.setLimits(d.podPath(pod.Hash, classDir(pod.Class)), l)
}

// SetPodLimits refuses: a pod slice's limits are systemd unit properties,
// which podsup does not set.
func (d *systemdDriver) SetPodLimits(Pod, PodLimits) error {
	return fmt.Errorf("%w with the systemd cgroup driver; use the cgroupfs driver", ErrPodLimits)
}

// setLimits makes the cgroup rel and writes its limits: on v1 into the
// memory and cpu hierarchies, on v2 into the one cgroup, with the cpu and
// memory controllers enabled for it in every cgroup above.
func (t tree) setLimits(rel string, l PodLimits) error {
	type setting struct{ controller, file, value string }
	var settings []setting
	if l.MemoryBytes > 0 {
		file := "memory.limit_in_bytes"
		if t.unified {
			file = "memory.max"
		}
		settings = append(settings, setting{"memory", file, strconv.FormatInt(l.MemoryBytes, 10)})
	}
	if l.CPUShares > 0 {
		if t.unified {
			settings = append(settings, setting{"cpu", "cpu.weight", strconv.FormatUint(sharesToWeight(l.CPUShares), 10)})
		} else {
			settings = append(settings, setting{"cpu", "cpu.shares", strconv.FormatUint(l.CPUShares, 10)})
		}
	}
	if l.CPUQuotaUsecs > 0 {
		if t.unified {
			settings = append(settings, setting{"cpu", "cpu.max", fmt.Sprintf("%d %d", l.CPUQuotaUsecs, l.CPUPeriodUsecs)})
		} else {
			settings = append(settings,
				setting{"cpu", "cpu.cfs_period_us", strconv.FormatInt(l.CPUPeriodUsecs, 10)},
				setting{"cpu", "cpu.cfs_quota_us", strconv.FormatInt(l.CPUQuotaUsecs, 10)})
		}
	}
	if t.unified {
		if err := t.enableControllers(rel, "cpu", "memory"); err != nil {
			return err
		}
	}
	for _, s := range settings {
		dir := filepath.Join(t.root, rel)
		if !t.unified {
			h, err := t.hierarchy(s.controller)
			if err != nil {
				return err
			}
			dir = filepath.Join(h, rel)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("make cgroup %s: %w", dir, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s.file), []byte(s.value), 0o644); err != nil {
			return fmt.Errorf("set %s of cgroup %s: %w", s.file, rel, err)
		}
	}
	return nil
}

// hierarchy is the v1 hierarchy of a controller: "cpu" is in "cpu,cpuacct".
func (t tree) hierarchy(controller string) (string, error) {
	entries, err := os.ReadDir(t.root)
	if err != nil {
		return "", fmt.Errorf("cgroup hierarchies: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() && slices.Contains(strings.Split(e.Name(), ","), controller) {
			return filepath.Join(t.root, e.Name()), nil
		}
	}
	return "", fmt.Errorf("no cgroup v1 hierarchy of the %s controller under %s", controller, t.root)
}

// enableControllers makes the cgroup rel of a unified tree and enables the
// controllers for it in the subtree_control of the root and of every cgroup
// above it, as runc does for a container's cgroup.
func (t tree) enableControllers(rel string, controllers ...string) error {
	if err := os.MkdirAll(filepath.Join(t.root, rel), 0o755); err != nil {
		return fmt.Errorf("make cgroup %s: %w", rel, err)
	}
	enable := "+" + strings.Join(controllers, " +")
	dir := t.root
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(enable), 0o644); err != nil {
			return fmt.Errorf("enable %s below %s: %w", strings.Join(controllers, ", "), dir, err)
		}
		dir = filepath.Join(dir, part)
	}
	return nil
}

// sharesToWeight converts v1 CPU shares (2 to 262144) to a v2 weight (1 to
// 10000), as runc and the kubelet do.
func sharesToWeight(shares uint64) uint64 {
	if shares < 2 {
		shares = 2
	}
	return 1 + ((min(shares, 262144)-2)*9999)/262142
}
