package podspec

import (
	"fmt"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
)

// withNamespace replaces or adds a namespace; an empty path makes a new one.
func withNamespace(t specs.LinuxNamespaceType, path string) oci.SpecOpts {
	return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: t, Path: path})
}

// sandboxNamespaces are the pause container's namespaces: its own network
// (or the one the CNI layer made, or the host's), IPC, UTS and PID, unless
// the pod shares the host's.
func sandboxNamespaces(pod *v1.Pod, netns string) []oci.SpecOpts {
	var opts []oci.SpecOpts
	switch {
	case pod.Spec.HostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace))
	case netns != "":
		opts = append(opts, withNamespace(specs.NetworkNamespace, netns))
	}
	if pod.Spec.HostIPC {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	}
	if pod.Spec.HostPID {
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	}
	return opts
}

// containerNamespaces join a container to its sandbox's network, IPC and
// UTS namespaces, and to its PID namespace when the pod shares one.
func containerNamespaces(pod *v1.Pod, sb Sandbox) []oci.SpecOpts {
	proc := func(ns string) string { return fmt.Sprintf("/proc/%d/ns/%s", sb.Pid, ns) }
	var opts []oci.SpecOpts
	switch {
	case pod.Spec.HostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace))
	case sb.NetNS != "":
		opts = append(opts, withNamespace(specs.NetworkNamespace, sb.NetNS), withNamespace(specs.UTSNamespace, proc("uts")))
	default:
		opts = append(opts, withNamespace(specs.NetworkNamespace, proc("net")), withNamespace(specs.UTSNamespace, proc("uts")))
	}
	if pod.Spec.HostIPC {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	} else {
		opts = append(opts, withNamespace(specs.IPCNamespace, proc("ipc")))
	}
	switch {
	case pod.Spec.HostPID:
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		opts = append(opts, withNamespace(specs.PIDNamespace, proc("pid")))
	}
	return opts
}

// withUserNamespace puts the process in a user namespace of the mapping:
// the one at path, or a new one. The mappings are in the spec even when
// it joins one (runc checks that they match): containerd reads them to
// give the bundle to the namespace's root.
func withUserNamespace(m specs.LinuxIDMapping, path string) oci.SpecOpts {
	maps := []specs.LinuxIDMapping{m}
	return oci.Compose(oci.WithUserNamespace(maps, maps), withNamespace(specs.UserNamespace, path))
}
