package daemon

import (
	"context"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsup/podsup/cni"
	"github.com/podsup/podsup/supervisor"
)

// cniNetwork gives pods their network through the cni package.
type cniNetwork struct{ m *cni.Manager }

var _ supervisor.Network = cniNetwork{}

// SetUp creates the pod's network namespace and network, with its
// hostPorts.
func (n cniNetwork) SetUp(ctx context.Context, pod *v1.Pod, sandboxID string, userns *specs.LinuxIDMapping, made func(supervisor.PodNetwork)) (supervisor.PodNetwork, error) {
	p := cni.PodNetwork{
		Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), SandboxID: sandboxID,
		PortMappings: portMappings(pod), UserNS: userns,
	}
	if made != nil {
		p.Made = func(netns, userns string) { made(supervisor.PodNetwork{NetNS: netns, UserNS: userns}) }
	}
	res, err := n.m.SetUp(ctx, p)
	if err != nil {
		return supervisor.PodNetwork{}, err
	}
	ips := make([]string, 0, len(res.IPs))
	for _, ip := range res.IPs {
		ips = append(ips, ip.String())
	}
	return supervisor.PodNetwork{NetNS: res.NetNS, UserNS: res.UserNS, IPs: ips}, nil
}

// TearDown releases the pod's network and removes its namespace.
func (n cniNetwork) TearDown(ctx context.Context, sandboxID string) error {
	return n.m.TearDown(ctx, sandboxID)
}

// portMappings are the pod's hostPorts, as the portmap plugin takes them.
func portMappings(pod *v1.Pod) []cni.PortMapping {
	var out []cni.PortMapping
	for _, c := range append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			out = append(out, cni.PortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort,
				Protocol: strings.ToLower(string(p.Protocol)), HostIP: p.HostIP})
		}
	}
	return out
}
