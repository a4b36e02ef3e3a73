package podspec

import (
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const hostResolv = "# host\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions edns0\n"

func dnsPod(policy v1.DNSPolicy, hostNetwork bool, cfg *v1.PodDNSConfig) *v1.Pod {
	pod := &v1.Pod{}
	pod.Name, pod.Namespace = "web-node1", "apps"
	pod.Spec.DNSPolicy, pod.Spec.HostNetwork, pod.Spec.DNSConfig = policy, hostNetwork, cfg
	return pod
}

func TestResolvConf(t *testing.T) {
	cluster := DNSConfig{ClusterDNS: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}
	noCluster := DNSConfig{ClusterDomain: "cluster.local"}
	ndots := "2"
	custom := &v1.PodDNSConfig{Nameservers: []string{"198.51.100.1"}, Searches: []string{"extra.example"},
		Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &ndots}, {Name: "rotate"}}}
	cases := []struct {
		name string
		pod  *v1.Pod
		cfg  DNSConfig
		want string
	}{
		{"Default takes the host's", dnsPod(v1.DNSDefault, false, nil), cluster,
			"nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions edns0\n"},
		{"ClusterFirst with cluster DNS", dnsPod(v1.DNSClusterFirst, false, nil), cluster,
			"nameserver 10.96.0.10\nsearch apps.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"},
		{"ClusterFirst without cluster DNS falls back to the host", dnsPod(v1.DNSClusterFirst, false, nil), noCluster,
			"nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions edns0\n"},
		{"ClusterFirst on the host network is Default", dnsPod(v1.DNSClusterFirst, true, nil), cluster,
			"nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions edns0\n"},
		{"ClusterFirstWithHostNet", dnsPod(v1.DNSClusterFirstWithHostNet, true, nil), cluster,
			"nameserver 10.96.0.10\nsearch apps.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"},
		{"None takes dnsConfig only", dnsPod(v1.DNSNone, false, custom), cluster,
			"nameserver 198.51.100.1\nsearch extra.example\noptions ndots:2 rotate\n"},
		{"dnsConfig merges into ClusterFirst", dnsPod(v1.DNSClusterFirst, false, custom), cluster,
			"nameserver 10.96.0.10\nnameserver 198.51.100.1\nsearch apps.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\noptions ndots:2 rotate\n"},
		{"at most three nameservers", dnsPod(v1.DNSDefault, false, &v1.PodDNSConfig{Nameservers: []string{"198.51.100.1", "198.51.100.2"}}), cluster,
			"nameserver 192.0.2.53\nnameserver 192.0.2.54\nnameserver 198.51.100.1\nsearch corp.example\noptions edns0\n"},
	}
	for _, tc := range cases {
		if got := string(ResolvConf(tc.pod, tc.cfg, []byte(hostResolv))); got != tc.want {
			t.Errorf("%s:\ngot:\n%swant:\n%s", tc.name, got, tc.want)
		}
	}
}

func TestHostsFile(t *testing.T) {
	pod := dnsPod(v1.DNSClusterFirst, false, nil)
	pod.Spec.Hostname, pod.Spec.Subdomain = "db-0", "db"
	pod.Spec.HostAliases = []v1.HostAlias{{IP: "198.51.100.7", Hostnames: []string{"legacy", "legacy.example"}}}
	name, fqdn := Hostname(pod, "cluster.local")
	got := string(HostsFile(pod, name, fqdn, []string{"10.86.0.5"}, nil))
	for _, want := range []string{
		"127.0.0.1\tlocalhost\n",
		"10.86.0.5\tdb-0.db.apps.svc.cluster.local\tdb-0\n",
		"# Entries added by HostAliases.\n198.51.100.7\tlegacy\tlegacy.example\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("hosts file lacks %q:\n%s", want, got)
		}
	}
	host := dnsPod(v1.DNSClusterFirst, true, nil)
	if got := string(HostsFile(host, "node1", "", nil, []byte("127.0.0.1 localhost\n192.0.2.2 node1"))); got != "127.0.0.1 localhost\n192.0.2.2 node1\n" {
		t.Errorf("hostNetwork hosts file %q: want the host's own", got)
	}
	long := dnsPod(v1.DNSDefault, false, nil)
	long.Name = strings.Repeat("a", 62) + "-b-node1"
	if name, _ := Hostname(long, ""); len(name) > 63 || strings.HasSuffix(name, "-") {
		t.Errorf("hostname %q of a long pod name", name)
	}
}

// TestKernelHostname: with setHostnameAsFQDN and a subdomain the host name
// is the pod's FQDN, as the kubelet computes it; without either, the short
// name; an FQDN longer than the kernel's 64 characters is refused, naming
// the field.
func TestKernelHostname(t *testing.T) {
	pod := func(hostname, subdomain string, fqdn bool) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "prod"},
			Spec: v1.PodSpec{Hostname: hostname, Subdomain: subdomain, SetHostnameAsFQDN: &fqdn}}
	}
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want string
	}{
		{"fqdn", pod("db", "backend", true), "db.backend.prod.svc.cluster.local"},
		{"pod name as hostname", pod("", "backend", true), "web-node1.backend.prod.svc.cluster.local"},
		{"no subdomain", pod("db", "", true), "db"},
		{"not asked", pod("db", "backend", false), "db"},
		{"64 characters", pod(strings.Repeat("a", 33), "backend", true), strings.Repeat("a", 33) + ".backend.prod.svc.cluster.local"},
	} {
		got, err := KernelHostname(tc.pod, "cluster.local")
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	_, err := KernelHostname(pod(strings.Repeat("a", 34), "backend", true), "cluster.local")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "spec.setHostnameAsFQDN: the pod's FQDN "+strings.Repeat("a", 34)+".backend.prod.svc.cluster.local is too long (64 characters is the max, 65 characters requested)") {
		t.Errorf("65-character FQDN: %v; want it refused, naming the field", err)
	}
}
