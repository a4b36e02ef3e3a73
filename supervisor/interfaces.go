package supervisor

import (
	"context"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

// Observer reads what the runtime holds for pods.
type Observer interface {
	PodState(ctx context.Context, key string) (*runtime.PodState, error)
	ListPods(ctx context.Context) (map[string]*runtime.PodState, error)
}

// Sandboxes creates and removes pod sandboxes and what pods leave behind.
type Sandboxes interface {
	RunSandbox(ctx context.Context, pod *v1.Pod, cfg runtime.SandboxConfig) (*runtime.Sandbox, error)
	// UserNS is the ID mapping of a pod with hostUsers: false, nil for
	// one in the host's user namespace.
	UserNS(ctx context.Context, pod *v1.Pod) (*specs.LinuxIDMapping, error)
	StopSandbox(ctx context.Context, sb *runtime.Sandbox) error
	RemoveSandbox(ctx context.Context, sb *runtime.Sandbox) error
}

// Containers starts, stops and removes container instances.
type Containers interface {
	StartContainer(ctx context.Context, cfg *runtime.ContainerConfig) (*runtime.Container, error)
	StopContainer(ctx context.Context, c *runtime.Container, grace time.Duration) error
	RemoveContainer(ctx context.Context, c *runtime.Container) error
}

// Cleaner removes what a removed pod leaves outside containerd.
type Cleaner interface {
	CleanupPod(ctx context.Context, key, namespace, name string) error
	PodDirs() (map[string]string, error)
	RemovePodDir(dir string) error
	RemoveOrphans(ctx context.Context, prefix string, minAge time.Duration) error
}

// Runtime is the container runtime as the supervisor uses it; the runtime
// package's *Runtime implements it.
type Runtime interface {
	Observer
	Sandboxes
	Containers
	Cleaner
}

var _ Runtime = (*runtime.Runtime)(nil)

// PodNetwork is a pod's network as the network layer made it.
type PodNetwork struct {
	NetNS  string // the network namespace; empty: runc makes one
	UserNS string // the pinned user namespace that owns it, if any
	IPs    []string
}

// Network gives a pod that is not hostNetwork its network namespace and
// addresses (the cni package), and takes them back.
type Network interface {
	// SetUp makes the pod's network; with a user namespace mapping
	// (hostUsers: false), inside a user namespace of that mapping. made,
	// if not nil, hears of the namespaces (PodNetwork without IPs) as soon
	// as they exist, before the network's plugins run.
	SetUp(ctx context.Context, pod *v1.Pod, sandboxID string, userns *specs.LinuxIDMapping, made func(PodNetwork)) (PodNetwork, error)
	TearDown(ctx context.Context, sandboxID string) error
}

// NoNetwork lets runc give each pod a network namespace with only loopback.
type NoNetwork struct{}

// SetUp makes nothing: runc creates the namespace.
func (NoNetwork) SetUp(context.Context, *v1.Pod, string, *specs.LinuxIDMapping, func(PodNetwork)) (PodNetwork, error) {
	return PodNetwork{}, nil
}

// TearDown has nothing to release.
func (NoNetwork) TearDown(context.Context, string) error { return nil }

// Condemned is a running container a liveness or startup probe failed: it is
// killed, with the probe's grace period when it sets one, and restarted as
// the restart policy says.
type Condemned struct {
	Reason             string
	GracePeriodSeconds *int64
}

// Hooks runs lifecycle handlers (the health package).
type Hooks interface {
	RunHook(ctx context.Context, c *v1.Container, containerID, podIP string, h *v1.LifecycleHandler, timeout time.Duration) error
}

// noHooks runs no handler: without a hook runner, hooks are ignored.
type noHooks struct{}

func (noHooks) RunHook(context.Context, *v1.Container, string, string, *v1.LifecycleHandler, time.Duration) error {
	return nil
}

// Volumes makes pods' volumes and mounts them (the volume package).
type Volumes interface {
	Prepare(ctx context.Context, pod *v1.Pod, cfg podspec.Objects, info podspec.PodInfo) error
	Mounts(pod *v1.Pod, c *v1.Container, env []string) ([]specs.Mount, error)
	Cleanup(key string) error
	Exceeded(pod *v1.Pod) (string, bool)
}

var _ Volumes = (*volume.Manager)(nil)

// Metrics is told what the supervisor does, for monitoring.
type Metrics interface {
	// SyncDone is one pod sync and how long it took.
	SyncDone(d time.Duration, err error)
	// ImagePull is one pull of a container image: done, or failed.
	ImagePull(err error)
	// Evicted is one pod eviction.
	Evicted()
}

// noMetrics drops everything.
type noMetrics struct{}

func (noMetrics) SyncDone(time.Duration, error) {}
func (noMetrics) ImagePull(error)               {}
func (noMetrics) Evicted()                      {}
