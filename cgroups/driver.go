// Package cgroups places pods and their containers in the cgroup tree, as
// the kubelet does, behind one seam for its three layouts: cgroupfs on
// cgroup v1 (a hierarchy per controller, and a hybrid host's empty unified
// mount beside them), cgroupfs on cgroup v2 (one unified hierarchy), and
// systemd slices on either. Each driver answers a container's OCI
// cgroupsPath, whether the OOM killer struck in it, and removes what a pod
// and its containers leave.
package cgroups

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Root is where the host mounts its cgroup hierarchies.
const Root = "/sys/fs/cgroup"

// Names of the drivers, as the kubelet's --cgroup-driver spells them.
const (
	CgroupFS = "cgroupfs"
	Systemd  = "systemd"
)

// Pod is what the cgroup tree knows of a pod: its hash, which names its
// cgroup, and its QoS class, which places it.
type Pod struct {
	Hash  string
	Class v1.PodQOSClass
}

// Driver places and removes the cgroups of pods and containers.
type Driver interface {
	// Name is CgroupFS or Systemd: runc must be told which.
	Name() string
	// ContainerPath is the OCI cgroupsPath of a container (or sandbox) of
	// the pod.
	ContainerPath(pod Pod, id string) string
	// OOMKilled reports whether the OOM killer struck in the cgroup of the
	// OCI cgroupsPath; the count stays until the cgroup is removed.
	OOMKilled(cgroupsPath string) bool
	// RemoveContainer removes the cgroup of an OCI cgroupsPath once its
	// task is gone: runc removes it when it deletes the task, but not
	// one a create cut short made.
	RemoveContainer(ctx context.Context, cgroupsPath string) error
	// RemovePod removes a pod's cgroup, whatever its class, once its
	// containers are gone.
	RemovePod(ctx context.Context, podHash string) error
	// SetPodLimits makes the pod's cgroup with its pod-level limits,
	// before its sandbox runs; ErrPodLimits where the driver cannot.
	SetPodLimits(pod Pod, l PodLimits) error
}

// New returns the driver of that name for pods under parent ("/podsup"),
// on the cgroup tree mounted at root.
func New(name, root, parent string) (Driver, error) {
	tree := tree{root: root, unified: Unified(root)}
	switch name {
	case CgroupFS:
		return &cgroupfs{tree: tree, parent: parent}, nil
	case Systemd:
		return newSystemd(tree, parent, stopUnit), nil
	}
	return nil, fmt.Errorf("cgroup driver %q: want %s or %s", name, CgroupFS, Systemd)
}

// Unified reports whether the tree at root is cgroup v2 alone. A hybrid
// host (v1 controllers with v2 mounted at unified, empty) is not: its
// controllers are v1's.
func Unified(root string) bool {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return err == nil
}

// HasController reports whether containers' cgroups on the tree at root
// can use a controller: enabled on a unified hierarchy, or mounted as (or
// with) a v1 hierarchy. A hybrid host whose controller is bound to neither
// cannot, and runc refuses any of its limits there.
func HasController(root, controller string) bool {
	t := tree{root: root, unified: Unified(root)}
	if t.unified {
		data, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		return err == nil && slices.Contains(strings.Fields(string(data)), controller)
	}
	_, err := t.hierarchy(controller)
	return err == nil
}

// classes are the QoS classes, each a directory (or slice) of its own.
var classes = []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort}

func classDir(c v1.PodQOSClass) string { return strings.ToLower(string(c)) }
