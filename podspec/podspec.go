// Package podspec turns a pod and one of its containers into the settings
// containerd runs them with: the OCI spec options of the pause container
// and of each container, and a container's environment. It does no I/O:
// what it needs to know about the node, the sandbox, the image and the
// pod's volumes comes in as values, and every option is unit-tested by
// applying it to a spec. The runtime layer (runtime/) only applies what it
// returns.
package podspec

import (
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/qos"
)

// ErrInvalid is a container whose settings cannot be made: no command, a
// runAsNonRoot that the image's user breaks, a seccomp profile without its
// name. The container waits with CreateContainerConfigError.
var ErrInvalid = errors.New("invalid container configuration")

// groupAnnotation makes the runc v2 shim serve every container of a pod
// from one process, as the CRI plugin does: one shim per pod.
const groupAnnotation = "io.containerd.runc.v2.group"

// Node is what the translation needs to know about the host.
type Node struct {
	// MemoryCapacity is the node's memory, in bytes, for the OOM score of
	// burstable containers.
	MemoryCapacity int64
	// OOMFloor is the lowest oom_score_adj this host lets runc set: a
	// process without CAP_SYS_RESOURCE may not lower its own.
	OOMFloor int
	// SeccompDir is where Localhost seccomp profiles are.
	SeccompDir string
	// AppArmor is nil on a host that does not enforce AppArmor.
	AppArmor *AppArmor
	// HugePageSizes are the hugepage sizes the host has, in bytes.
	HugePageSizes []int64
	// Hugetlb reports whether runc can set hugetlb cgroup limits here;
	// without the controller, hugepages limits are not set (runc would
	// refuse the container).
	Hugetlb bool
	// SELinux is nil on a host that does not enforce SELinux: there
	// seLinuxOptions are ignored.
	SELinux *SELinux
}

// Sandbox is what a container needs of its pod's pause container.
type Sandbox struct {
	ID  string
	Pid uint32
	// NetNS is the network namespace the CNI layer made, if any.
	NetNS string
	// UserNS maps the pod's user and group IDs to the host's (the same
	// range for both); nil for a pod in the host's user namespace.
	UserNS *specs.LinuxIDMapping
	// SELinuxLabel is the pause container's process label, which
	// containers without seLinuxOptions of their own share.
	SELinuxLabel string
}

// PodFiles are the host paths of what podsup makes for a pod and binds
// into every container of it.
type PodFiles struct {
	Hosts, ResolvConf, Hostname string
	// Shm is the pod's /dev/shm; unused with hostIPC.
	Shm string
}

// Container is one container instance to translate.
type Container struct {
	Pod       *v1.Pod
	Container *v1.Container
	Sandbox   Sandbox
	// Image is the image's configuration: its entrypoint, command,
	// environment, working directory and user.
	Image ocispec.ImageConfig
	// Env is the container's resolved environment (see Env), KEY=VALUE.
	Env []string
	// Mounts are the container's volumes, ready to bind.
	Mounts []specs.Mount
	Files  PodFiles
	// CgroupsPath is the container's OCI cgroupsPath.
	CgroupsPath string
	// TerminationFile is the host file bound at the container's
	// terminationMessagePath, if it has one.
	TerminationFile string
}

// ContainerSpec is the OCI spec of a container, as options applied to
// containerd's default spec in order.
func (n Node) ContainerSpec(in Container) ([]oci.SpecOpts, error) {
	pod, c := in.Pod, in.Container
	sec := effectiveSecurity(pod, c)
	user := sec.user(in.Image.User)
	if err := sec.verifyNonRoot(user); err != nil {
		return nil, err
	}
	args := processArgs(in.Image, c)
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: no command: the image has no entrypoint or cmd and the container sets no command", ErrInvalid)
	}
	opts := []oci.SpecOpts{
		withImageEnv(in.Image.Env),
		oci.WithEnv(in.Env),
		// $(VAR) in command and args refers to the container's own
		// environment only, not the image's, as in Kubernetes.
		withArgs(args, in.Env),
		oci.WithProcessCwd(workingDir(in.Image, c)),
		withoutRlimits,
		oci.WithCgroup(in.CgroupsPath),
		withAnnotation(groupAnnotation, in.Sandbox.ID),
	}
	opts = append(opts, withUser(user, strictGroups(pod))...)
	opts = append(opts, withGroups(pod))
	if c.TTY {
		opts = append(opts, oci.WithTTY)
	}
	opts = append(opts, containerNamespaces(pod, in.Sandbox)...)
	opts = append(opts, containerMounts(in, sec.readOnlyRoot())...)
	if m := in.Sandbox.UserNS; m != nil {
		// The pod's user namespace, whose mappings runc reads from it;
		// every bind mount ID-mapped into it, so that what root owns on the
		// host, root of the pod owns.
		opts = append(opts, withUserNamespace(*m, fmt.Sprintf("/proc/%d/ns/user", in.Sandbox.Pid)), withIDMappedBinds(*m))
	}
	secOpts, err := n.securityOpts(sec)
	if err != nil {
		return nil, err
	}
	opts = append(opts, secOpts...)
	opts = append(opts, n.appArmorOpts(appArmorProfile(pod, c, containerField(pod, c.Name)), sec.privileged())...)
	labels, err := n.containerLabels(pod, c, in.Sandbox.SELinuxLabel)
	if err != nil {
		return nil, err
	}
	opts = append(opts, withSELinuxLabels(labels))
	return append(opts, n.resourceOpts(pod, c)...), nil
}

// PauseContainer is a pod's pause container to translate.
type PauseContainer struct {
	Pod *v1.Pod
	// ID is the pause container's; it names the pod's shim group.
	ID          string
	NetNS       string // the CNI layer's network namespace, if any
	CgroupsPath string
	Hostname    string
	// UserNS maps the IDs of a pod with hostUsers: false; nil otherwise.
	UserNS *specs.LinuxIDMapping
	// UserNSPath is the user namespace to join, the one that owns NetNS;
	// empty: a new one of UserNS's mapping.
	UserNSPath string
	// SELinux are the pod's labels (SandboxLabels); empty on a host
	// without SELinux.
	SELinux SELinuxLabels
}

// SandboxSpec is the OCI spec of a pod's pause container: read-only, no
// capabilities, the pod's sysctls, the pod's namespaces (a user namespace
// of its own for hostUsers: false), its host name.
func (n Node) SandboxSpec(in PauseContainer) []oci.SpecOpts {
	pod := in.Pod
	opts := []oci.SpecOpts{
		oci.WithRootFSReadonly(),
		oci.WithCgroup(in.CgroupsPath),
		withAnnotation(groupAnnotation, in.ID),
		withOOMScoreAdj(n.clampOOM(qos.SandboxOOMScoreAdj)),
		withNoNewPrivileges(true),
		oci.WithCapabilities(nil),
		withoutRlimits,
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		opts = append(opts, withSysctls(sc.Sysctls))
	}
	opts = append(opts, sandboxNamespaces(pod, in.NetNS)...)
	if !pod.Spec.HostNetwork {
		opts = append(opts, oci.WithHostname(in.Hostname))
	}
	if m := in.UserNS; m != nil {
		opts = append(opts, withUserNamespace(*m, in.UserNSPath))
	}
	return append(opts, withSELinuxLabels(in.SELinux))
}

// clampOOM raises an OOM score adjustment to what the host allows.
func (n Node) clampOOM(adj int) int { return max(adj, n.OOMFloor) }

// ContainerNamed is the pod's container or init container of that name,
// or nil.
func ContainerNamed(pod *v1.Pod, name string) *v1.Container {
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// IsSidecar reports whether a container is a native sidecar: an init
// container with restartPolicy Always, which keeps running beside the app
// containers (Kubernetes 1.33). Only meaningful for init containers.
func IsSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}
