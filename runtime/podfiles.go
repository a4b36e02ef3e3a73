package runtime

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/podspec"
)

// writePodFiles writes a pod's /etc/hosts, /etc/resolv.conf and
// /etc/hostname (kernelHostname, or the host's for hostNetwork) into its
// directory.
func (r *Runtime) writePodFiles(dir string, pod *v1.Pod, ips []string, kernelHostname string) error {
	hostname, fqdn := podspec.Hostname(pod, r.dns.ClusterDomain)
	if pod.Spec.HostNetwork {
		h, err := os.Hostname()
		if err == nil {
			hostname, fqdn, kernelHostname = h, "", h
		}
	}
	var hostHosts []byte
	if pod.Spec.HostNetwork {
		hostHosts, _ = os.ReadFile("/etc/hosts")
	}
	hostResolv, err := os.ReadFile(r.dns.HostResolvConf)
	if err != nil && (pod.Spec.DNSPolicy != v1.DNSNone) {
		r.log.Warn("cannot read the host's resolv.conf; pods get an empty one", "file", r.dns.HostResolvConf, "err", err)
	}
	resolv := podspec.ResolvConf(pod, r.dns, hostResolv)
	files := map[string][]byte{
		"etc-hosts":   podspec.HostsFile(pod, hostname, fqdn, ips, hostHosts),
		"resolv.conf": resolv,
		"hostname":    []byte(kernelHostname + "\n"),
		"key":         []byte(pod.Namespace + "/" + pod.Name + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
