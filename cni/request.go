package cni

import (
	"fmt"
	"net"
	"strings"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containernetworking/cni/libcni"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// PortMapping is one hostPort of a pod, passed to plugins through the
// portMappings capability.
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // "tcp", "udp" or "sctp", as CNI wants; upper case is accepted, empty is "tcp"
	HostIP        string // empty for every host address
}

// protocol is the mapping's protocol as CNI spells it; empty is TCP, as the
// Kubernetes API defaults it.
func (pm PortMapping) protocol() string {
	if pm.Protocol == "" {
		return "tcp"
	}
	return strings.ToLower(pm.Protocol)
}

// PodNetwork is what SetUp needs to know of a pod.
type PodNetwork struct {
	Namespace, Name, UID string // the pod (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID)
	// SandboxID is the pause container's ID: K8S_POD_INFRA_CONTAINER_ID,
	// the CNI container ID and the name of the namespace file, so it must be
	// a valid containerd ID.
	SandboxID string
	// PortMappings are the pod's hostPorts. Mappings with no host port are
	// skipped, as the kubelet skips them.
	PortMappings []PortMapping
	// UserNS, for a pod with hostUsers: false, maps its user namespace's
	// IDs to the host's. Its network namespace is then made inside that
	// user namespace, which is pinned (Result.UserNS) for the sandbox to
	// join: only a user namespace that owns a network namespace may mount
	// sysfs for it, as the CRI plugin arranges it.
	UserNS *specs.LinuxIDMapping
	// Made, if not nil, is called with the paths of the namespaces as
	// soon as SetUp has made them, before the plugins' ADD, so that the
	// sandbox can be created while they run. It is not called when SetUp
	// finds the network already set up, nor when it fails before.
	Made func(netns, userns string)
}

// Result is a pod's network as set up.
type Result struct {
	NetNS     string   // path of the bind-mounted network namespace
	UserNS    string   // path of the pinned user namespace that owns it; empty but for PodNetwork.UserNS
	IPs       []net.IP // the pod's addresses, in the order the plugins gave them
	Interface string   // the pod's interface in the namespace
}

func (r *Result) clone() *Result {
	c := *r
	c.IPs = make([]net.IP, len(r.IPs))
	for i, ip := range r.IPs {
		c.IPs[i] = append(net.IP(nil), ip...)
	}
	return &c
}

func (p *PodNetwork) pod() string { return p.Namespace + "/" + p.Name }

// validate checks what plugins and the file system will be given.
func (p *PodNetwork) validate() error {
	bad := func(field, value, why string) error {
		return fmt.Errorf("pod %s: %s %q: %s: %w", p.pod(), field, value, why, ErrInvalid)
	}
	if err := validateSandboxID(p.SandboxID); err != nil {
		return fmt.Errorf("pod %s: %w", p.pod(), err)
	}
	for _, f := range []struct{ name, value string }{
		{"Namespace", p.Namespace}, {"Name", p.Name}, {"UID", p.UID},
	} {
		if f.value == "" {
			return bad(f.name, f.value, "required")
		}
		if strings.ContainsAny(f.value, ";=") {
			return bad(f.name, f.value, "must not contain ';' or '=' (CNI_ARGS separators)")
		}
	}
	for i, pm := range p.PortMappings {
		field := fmt.Sprintf("PortMappings[%d]", i)
		switch {
		case pm.HostPort == 0:
			continue
		case pm.HostPort < 0 || pm.HostPort > 65535:
			return bad(field+".HostPort", fmt.Sprint(pm.HostPort), "must be 1 to 65535")
		case pm.ContainerPort < 1 || pm.ContainerPort > 65535:
			return bad(field+".ContainerPort", fmt.Sprint(pm.ContainerPort), "must be 1 to 65535")
		}
		switch pm.protocol() {
		case "tcp", "udp", "sctp":
		default:
			return bad(field+".Protocol", pm.Protocol, `must be "tcp", "udp" or "sctp"`)
		}
		if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
			return bad(field+".HostIP", pm.HostIP, "not an IP address")
		}
	}
	return nil
}

// validateSandboxID accepts containerd's IDs, which are also valid CNI
// container IDs and safe as file names.
func validateSandboxID(id string) error {
	if err := identifiers.Validate(id); err != nil {
		return fmt.Errorf("sandbox ID %q: %w", id, ErrInvalid)
	}
	return nil
}

// portMapEntry is one element of the portMappings capability, as portmap
// reads it.
type portMapEntry struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// cniArgs are the CNI_ARGS of a pod, as the kubelet passes them.
// IgnoreUnknown keeps plugins that know none of them from failing.
func cniArgs(p PodNetwork) [][2]string {
	return [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", p.Namespace},
		{"K8S_POD_NAME", p.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", p.SandboxID},
		{"K8S_POD_UID", p.UID},
	}
}

// runtimeConf is the pod's invocation of its network's plugins.
func runtimeConf(p PodNetwork, netns string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: p.SandboxID,
		NetNS:       netns,
		IfName:      podIfName,
		Args:        cniArgs(p),
	}
	var ports []portMapEntry
	for _, pm := range p.PortMappings {
		if pm.HostPort == 0 {
			continue
		}
		ports = append(ports, portMapEntry{
			HostPort:      pm.HostPort,
			ContainerPort: pm.ContainerPort,
			Protocol:      pm.protocol(),
			HostIP:        pm.HostIP,
		})
	}
	if len(ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": ports}
	}
	return rt
}

// loopbackConf is the pod's invocation of the loopback list.
func loopbackConf(p PodNetwork, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: p.SandboxID,
		NetNS:       netns,
		IfName:      loopbackIfName,
		Args:        cniArgs(p),
	}
}
