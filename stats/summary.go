// Package stats measures what the node and its pods use, as the kubelet's
// cAdvisor does: CPU, memory and processes from the cgroups, disk from the
// filesystems, network from each pod's namespace. It serves the kubelet's
// Summary API shape (/stats/summary) and feeds the eviction manager.
//
// The types below carry the field names of the kubelet's
// stats/v1alpha1 Summary, so tools that read a kubelet's summary read
// podsup's; podsup defines them itself rather than import k8s.io/kubelet,
// whose dependencies would pull newer gRPC than containerd 1.7 builds with.
package stats

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Summary is the node and its pods, as /stats/summary serves them.
type Summary struct {
	Node NodeStats  `json:"node"`
	Pods []PodStats `json:"pods"`
}

// NodeStats is the whole machine.
type NodeStats struct {
	NodeName  string        `json:"nodeName"`
	StartTime metav1.Time   `json:"startTime"`
	CPU       *CPUStats     `json:"cpu,omitempty"`
	Memory    *MemoryStats  `json:"memory,omitempty"`
	Network   *NetworkStats `json:"network,omitempty"`
	// Fs is the node filesystem, the one holding podsup's root directory.
	Fs      *FsStats      `json:"fs,omitempty"`
	Runtime *RuntimeStats `json:"runtime,omitempty"`
	Rlimit  *RlimitStats  `json:"rlimit,omitempty"`
}

// RuntimeStats are the container runtime's filesystems.
type RuntimeStats struct {
	// ImageFs is the filesystem of containerd's snapshots: images and
	// containers' writable layers.
	ImageFs     *FsStats `json:"imageFs,omitempty"`
	ContainerFs *FsStats `json:"containerFs,omitempty"`
}

// RlimitStats are the machine's process IDs.
type RlimitStats struct {
	Time metav1.Time `json:"time"`
	// MaxPID is the number of tasks the kernel allows.
	MaxPID *int64 `json:"maxpid,omitempty"`
	// NumOfRunningProcesses is the number of tasks (threads) that exist.
	NumOfRunningProcesses *int64 `json:"curproc,omitempty"`
}

// PodReference names a pod.
type PodReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

// PodStats is one pod: its pod cgroup, its network namespace, its
// containers and volumes.
type PodStats struct {
	PodRef     PodReference     `json:"podRef"`
	StartTime  metav1.Time      `json:"startTime"`
	Containers []ContainerStats `json:"containers"`
	CPU        *CPUStats        `json:"cpu,omitempty"`
	Memory     *MemoryStats     `json:"memory,omitempty"`
	Network    *NetworkStats    `json:"network,omitempty"`
	Volumes    []VolumeStats    `json:"volume,omitempty"`
	// EphemeralStorage is what the pod takes of the node's disk: its
	// containers' writable layers and logs and its volumes on disk.
	EphemeralStorage *FsStats      `json:"ephemeral-storage,omitempty"`
	ProcessStats     *ProcessStats `json:"process_stats,omitempty"`
}

// ContainerStats is one running container.
type ContainerStats struct {
	Name      string       `json:"name"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *CPUStats    `json:"cpu,omitempty"`
	Memory    *MemoryStats `json:"memory,omitempty"`
	// Rootfs is the container's writable layer.
	Rootfs *FsStats `json:"rootfs,omitempty"`
	// Logs are the container's log files, every instance's.
	Logs *FsStats `json:"logs,omitempty"`
}

// CPUStats is CPU use.
type CPUStats struct {
	Time metav1.Time `json:"time"`
	// UsageNanoCores is the rate since the previous measurement, in
	// billionths of a core; missing on the first one.
	UsageNanoCores       *uint64 `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds,omitempty"`
}

// MemoryStats is memory use, in bytes.
type MemoryStats struct {
	Time metav1.Time `json:"time"`
	// AvailableBytes is the limit (or, for the node, the capacity) less
	// the working set; missing when there is no limit.
	AvailableBytes *uint64 `json:"availableBytes,omitempty"`
	UsageBytes     *uint64 `json:"usageBytes,omitempty"`
	// WorkingSetBytes is usage less the inactive file cache, which the
	// kernel reclaims easily: what eviction and the OOM killer go by.
	WorkingSetBytes *uint64 `json:"workingSetBytes,omitempty"`
	RSSBytes        *uint64 `json:"rssBytes,omitempty"`
	PageFaults      *uint64 `json:"pageFaults,omitempty"`
	MajorPageFaults *uint64 `json:"majorPageFaults,omitempty"`
}

// NetworkStats is network traffic: the default interface inline, every
// interface in Interfaces.
type NetworkStats struct {
	Time           metav1.Time `json:"time"`
	InterfaceStats `json:",inline"`
	Interfaces     []InterfaceStats `json:"interfaces,omitempty"`
}

// InterfaceStats is one interface's counters since it was created.
type InterfaceStats struct {
	Name     string  `json:"name"`
	RxBytes  *uint64 `json:"rxBytes,omitempty"`
	RxErrors *uint64 `json:"rxErrors,omitempty"`
	TxBytes  *uint64 `json:"txBytes,omitempty"`
	TxErrors *uint64 `json:"txErrors,omitempty"`
}

// FsStats is a filesystem, or the part of one a container, a volume or a
// pod takes (then only the used fields are set, and the filesystem's
// totals for context).
type FsStats struct {
	Time           metav1.Time `json:"time"`
	AvailableBytes *uint64     `json:"availableBytes,omitempty"`
	CapacityBytes  *uint64     `json:"capacityBytes,omitempty"`
	UsedBytes      *uint64     `json:"usedBytes,omitempty"`
	InodesFree     *uint64     `json:"inodesFree,omitempty"`
	Inodes         *uint64     `json:"inodes,omitempty"`
	InodesUsed     *uint64     `json:"inodesUsed,omitempty"`
}

// VolumeStats is one of a pod's volumes.
type VolumeStats struct {
	FsStats `json:",inline"`
	Name    string `json:"name"`
}

// ProcessStats is a pod's processes.
type ProcessStats struct {
	ProcessCount *uint64 `json:"process_count,omitempty"`
}
