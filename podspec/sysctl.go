package podspec

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// SafeSysctls are the sysctls the kubelet lets any pod set
// (pkg/kubelet/sysctl/safe_sysctls.go, Kubernetes 1.37): namespaced, and
// with no effect on other pods. The kubelet drops those the running kernel
// is too old for; podsup does not (it needs 4.15 or later for all of them).
var SafeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_wmem",
}

// sysctlNamespace is the namespace a sysctl belongs to: "ipc", "net", or ""
// for one that is not namespaced and so would change the host.
func sysctlNamespace(name string) string {
	switch {
	case name == "kernel.sem", strings.HasPrefix(name, "kernel.shm"), strings.HasPrefix(name, "kernel.msg"), strings.HasPrefix(name, "fs.mqueue."):
		return "ipc"
	case strings.HasPrefix(name, "net."):
		return "net"
	}
	return ""
}

// NormalizeSysctl turns a sysctl written with slashes (net/ipv4/tcp_rmem)
// into dots, as the kubelet does; a name whose first separator is a dot is
// left alone.
func NormalizeSysctl(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, name)
}

// SysctlAllowlist is which sysctls pods may set: the safe ones and those
// --allowed-unsafe-sysctls names (a name, or a prefix ending in *).
type SysctlAllowlist struct {
	names    []string
	prefixes []string
}

// NewSysctlAllowlist allows the safe sysctls and the unsafe patterns given.
// A pattern outside a namespace is refused: no flag may let a pod change the
// host.
func NewSysctlAllowlist(unsafe []string) (*SysctlAllowlist, error) {
	a := &SysctlAllowlist{names: slices.Clone(SafeSysctls)}
	for _, p := range unsafe {
		p = NormalizeSysctl(p)
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if sysctlNamespace(prefix) == "" {
				return nil, fmt.Errorf("%q: the sysctls it matches are not known to be namespaced: they would change the host", p)
			}
			a.prefixes = append(a.prefixes, prefix)
			continue
		}
		if sysctlNamespace(p) == "" {
			return nil, fmt.Errorf("%q is not known to be namespaced: it would change the host", p)
		}
		a.names = append(a.names, p)
	}
	return a, nil
}

// Admit refuses a pod that sets a sysctl not allowed, as the kubelet's
// admission does, with reason SysctlForbidden and the sysctl and its field
// named. A sysctl that is not namespaced is never allowed.
func (a *SysctlAllowlist) Admit(pod *v1.Pod) (ok bool, reason, message string) {
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return true, "", ""
	}
	for i, s := range sc.Sysctls {
		name := NormalizeSysctl(s.Name)
		if a.allows(name) {
			continue
		}
		why := "not allowlisted: podsup allows the kubelet's safe sysctls and those --allowed-unsafe-sysctls names"
		if sysctlNamespace(name) == "" {
			why = "not namespaced: setting it would change the host, so no flag allows it"
		}
		return false, "SysctlForbidden", fmt.Sprintf("forbidden sysctl: %q %s (spec.securityContext.sysctls[%d])", s.Name, why, i)
	}
	return true, "", ""
}

func (a *SysctlAllowlist) allows(name string) bool {
	if sysctlNamespace(name) == "" {
		return false
	}
	return slices.Contains(a.names, name) || slices.ContainsFunc(a.prefixes, func(p string) bool { return strings.HasPrefix(name, p) })
}
