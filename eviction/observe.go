package eviction

import (
	"context"

	v1 "k8s.io/api/core/v1"
)

// Amount is how much of something the node has left, of how much.
type Amount struct {
	Available uint64
	Capacity  uint64
}

// PodUsage is what one pod uses of each resource eviction ranks by.
type PodUsage struct {
	MemoryWorkingSet uint64
	// Ephemeral is the pod's use of the node filesystem: its containers'
	// writable layers and logs and its local volumes.
	Ephemeral uint64
	// Rootfs is its containers' writable layers alone, which live on the
	// image filesystem.
	Rootfs    uint64
	Processes uint64
}

// Stats is one measurement of the node and its pods. A signal missing from
// Signals was not measured and is neither met nor cleared.
type Stats struct {
	Signals map[Signal]Amount
	Pods    map[string]PodUsage // by pod key, namespace/name
}

// StatsFunc measures the node and its pods.
type StatsFunc func(ctx context.Context) (*Stats, error)

// Resource is what a signal measures; pressure on it has one condition and
// one way of reclaiming and ranking.
type Resource string

// The resources.
const (
	Memory  Resource = "memory"
	NodeFs  Resource = "nodefs"
	ImageFs Resource = "imagefs"
	PIDs    Resource = "pids"
)

// resourceOf is the resource a signal measures.
func resourceOf(s Signal) Resource {
	switch s {
	case MemoryAvailable:
		return Memory
	case NodeFsAvailable, NodeFsInodesFree:
		return NodeFs
	case ImageFsAvailable, ImageFsInodesFree:
		return ImageFs
	}
	return PIDs
}

// conditionOf is the node condition pressure on a resource sets.
func conditionOf(r Resource) v1.NodeConditionType {
	switch r {
	case Memory:
		return v1.NodeMemoryPressure
	case PIDs:
		return v1.NodePIDPressure
	}
	return v1.NodeDiskPressure
}

// resourceName is the resource as the kubelet's eviction messages name it.
func resourceName(s Signal) string {
	switch s {
	case MemoryAvailable:
		return "memory"
	case NodeFsInodesFree, ImageFsInodesFree:
		return "inodes"
	case PIDAvailable:
		return "pids"
	}
	return "ephemeral-storage"
}

// met reports whether a threshold is met by what the node has left; once
// met (wasMet), it stays met until the minimum reclaim is reached as well.
func met(t Threshold, a Amount, wasMet bool) bool {
	want := t.Value.amount(a.Capacity)
	if wasMet && t.MinReclaim != nil {
		want += t.MinReclaim.amount(a.Capacity)
	}
	return a.Available < want
}
