package podspec

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// TestSysctlAdmission: the kubelet's safe sysctls are allowed; others only
// as --allowed-unsafe-sysctls names them, by name or prefix; one that is
// not namespaced never, and the refusal says which and where.
func TestSysctlAdmission(t *testing.T) {
	allow, err := NewSysctlAllowlist([]string{"kernel.msg*", "net.core.somaxconn", "net/ipv4/route/min_pmtu"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sysctl string
		want   string // "": admitted
	}{
		{sysctl: "net.ipv4.tcp_syncookies"},
		{sysctl: "net.ipv4.tcp_wmem"},
		{sysctl: "kernel.shm_rmid_forced"},
		{sysctl: "net/ipv4/ip_local_port_range"},
		{sysctl: "kernel.msgmax"},
		{sysctl: "net.core.somaxconn"},
		{sysctl: "net.ipv4.route.min_pmtu"},
		{sysctl: "net.core.rmem_max", want: `forbidden sysctl: "net.core.rmem_max" not allowlisted`},
		{sysctl: "kernel.sem", want: `forbidden sysctl: "kernel.sem" not allowlisted`},
		{sysctl: "vm.swappiness", want: `forbidden sysctl: "vm.swappiness" not namespaced`},
	} {
		t.Run(tc.sysctl, func(t *testing.T) {
			pod := testPod()
			pod.Spec.SecurityContext = &v1.PodSecurityContext{Sysctls: []v1.Sysctl{{Name: "net.ipv4.tcp_syncookies", Value: "1"}, {Name: tc.sysctl, Value: "1"}}}
			ok, reason, message := allow.Admit(pod)
			if tc.want == "" {
				if !ok {
					t.Errorf("refused: %s: %s", reason, message)
				}
				return
			}
			if ok || reason != "SysctlForbidden" || !strings.HasPrefix(message, tc.want) || !strings.HasSuffix(message, "(spec.securityContext.sysctls[1])") {
				t.Errorf("admitted %v, %s: %q; want SysctlForbidden %q naming the field", ok, reason, message, tc.want)
			}
		})
	}
	if ok, _, _ := allow.Admit(testPod()); !ok {
		t.Error("a pod without sysctls was refused")
	}
}

func TestNewSysctlAllowlistRefusesHostSysctls(t *testing.T) {
	for _, p := range []string{"vm.swappiness", "kernel.*", "*", "fs.file-max"} {
		if _, err := NewSysctlAllowlist([]string{p}); err == nil {
			t.Errorf("%q allowed; it is not namespaced", p)
		}
	}
	for _, p := range []string{"fs.mqueue.*", "kernel.sem", "net.*"} {
		if _, err := NewSysctlAllowlist([]string{p}); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
}

func TestNormalizeSysctl(t *testing.T) {
	for in, want := range map[string]string{"net/ipv4/tcp_rmem": "net.ipv4.tcp_rmem", "net.ipv4.conf.eno2/100.rp_filter": "net.ipv4.conf.eno2/100.rp_filter", "net/ipv4/conf/eno2.100/rp_filter": "net.ipv4.conf.eno2/100.rp_filter"} {
		if got := NormalizeSysctl(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
