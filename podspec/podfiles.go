package podspec

import (
	"bytes"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// DNSConfig is what a pod's /etc/resolv.conf is made from.
type DNSConfig struct {
	// ClusterDNS are the nameservers of ClusterFirst pods (--cluster-dns).
	// Without them ClusterFirst falls back to the host's resolver, as the
	// kubelet does.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS domain (--cluster-domain).
	ClusterDomain string
	// HostResolvConf is the host's resolver configuration (--resolv-conf),
	// used by dnsPolicy Default and by hostNetwork pods.
	HostResolvConf string
}

// Limits the kubelet applies to resolv.conf.
const (
	maxNameservers = 3
	maxSearches    = 32
)

// Hostname is the pod's host name and, with a subdomain, its fully
// qualified name: <hostname>.<subdomain>.<namespace>.svc.<domain>.
func Hostname(pod *v1.Pod, domain string) (string, string) {
	name := pod.Spec.Hostname
	if name == "" {
		name = pod.Name
		if len(name) > 63 {
			name = strings.TrimRight(name[:63], "-.")
		}
	}
	if pod.Spec.Subdomain == "" || domain == "" {
		return name, ""
	}
	return name, fmt.Sprintf("%s.%s.%s.svc.%s", name, pod.Spec.Subdomain, pod.Namespace, domain)
}

// maxFQDN is the longest host name the kernel's nodename field holds (65
// bytes with its terminating NUL), the kubelet's limit for
// setHostnameAsFQDN.
const maxFQDN = 64

// KernelHostname is the host name a pod's containers see (uname -n,
// /etc/hostname): its fully qualified name with setHostnameAsFQDN and a
// subdomain, else its short name. A fully qualified name longer than the
// kernel holds is refused, as the kubelet refuses it.
func KernelHostname(pod *v1.Pod, domain string) (string, error) {
	hostname, fqdn := Hostname(pod, domain)
	if fqdn == "" || pod.Spec.SetHostnameAsFQDN == nil || !*pod.Spec.SetHostnameAsFQDN {
		return hostname, nil
	}
	if len(fqdn) > maxFQDN {
		return "", fmt.Errorf("%w: spec.setHostnameAsFQDN: the pod's FQDN %s is too long (%d characters is the max, %d characters requested); shorten spec.hostname or spec.subdomain",
			ErrInvalid, fqdn, maxFQDN, len(fqdn))
	}
	return fqdn, nil
}

// HostsFile is the pod's /etc/hosts, as the kubelet writes it: the usual
// localhost entries and the pod's IPs with its names, or for a hostNetwork pod
// the host's own file, then the pod's hostAliases.
func HostsFile(pod *v1.Pod, hostname, fqdn string, ips []string, hostHosts []byte) []byte {
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		b.Write(hostHosts)
		if len(hostHosts) > 0 && hostHosts[len(hostHosts)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("# Kubernetes-managed hosts file.\n")
		b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		for _, ip := range ips {
			if fqdn != "" {
				fmt.Fprintf(&b, "%s\t%s\t%s\n", ip, fqdn, hostname)
			} else {
				fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.Bytes()
}

// ResolvConf is the pod's /etc/resolv.conf. Default and hostNetwork pods (unless
// ClusterFirstWithHostNet) take the host's resolver; ClusterFirst takes the
// cluster DNS when there is one and falls back to the host's when there is
// not; None starts empty. dnsConfig is then merged in.
func ResolvConf(pod *v1.Pod, cfg DNSConfig, host []byte) []byte {
	var nameservers, searches, options []string
	hostNS, hostSearch, hostOpts := parseResolvConf(host)
	clusterFirst := pod.Spec.DNSPolicy == v1.DNSClusterFirstWithHostNet ||
		(pod.Spec.DNSPolicy == v1.DNSClusterFirst && !pod.Spec.HostNetwork)
	switch {
	case pod.Spec.DNSPolicy == v1.DNSNone:
	case clusterFirst && len(cfg.ClusterDNS) > 0:
		nameservers = append(nameservers, cfg.ClusterDNS...)
		if d := cfg.ClusterDomain; d != "" {
			searches = append(searches, pod.Namespace+".svc."+d, "svc."+d, d)
		}
		searches = append(searches, hostSearch...)
		options = []string{"ndots:5"}
	default:
		nameservers, searches, options = hostNS, hostSearch, hostOpts
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		nameservers = append(nameservers, dc.Nameservers...)
		searches = append(searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			options = mergeOption(options, o.Name, opt)
		}
	}
	nameservers = dedupe(nameservers)
	if len(nameservers) > maxNameservers {
		nameservers = nameservers[:maxNameservers]
	}
	searches = dedupe(searches)
	if len(searches) > maxSearches {
		searches = searches[:maxSearches]
	}
	var b bytes.Buffer
	for _, ns := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes()
}

// mergeOption replaces an option of the same name or appends it.
func mergeOption(options []string, name, opt string) []string {
	for i, o := range options {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			options[i] = opt
			return options
		}
	}
	return append(options, opt)
}

func parseResolvConf(data []byte) (nameservers, searches, options []string) {
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			nameservers = append(nameservers, f[1])
		case "search", "domain":
			searches = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	return nameservers, searches, options
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	out := list[:0:0]
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
