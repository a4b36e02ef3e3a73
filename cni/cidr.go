package cni

import (
	"fmt"
	"net/netip"
)

// DefaultPodCIDR is the subnet of the built-in default network. It sits in a
// gap that no common container stack on an edge box takes by default: above
// CRI-O's 10.85.0.0/16 and below podman's 10.88.0.0/16 and the networks
// podman creates later (its pools hand out /24s from 10.89.0.0/16 upward,
// through Kubernetes' 10.96.0.0/12 service range and flannel's and kind's
// 10.244.0.0/16); clear of k3s's 10.42.0.0/16 and 10.43.0.0/16, of docker's
// 172.17.0.0/16 and its other 172.16.0.0/12 and 192.168.0.0/16 pools, of
// calico's 192.168.0.0/16 and of the 100.64.0.0/10 CGNAT range that
// Tailscale uses. The other free neighbour, 10.87.0.0/16, is the default
// network of Dagger's engine.
const DefaultPodCIDR = "10.86.0.0/16"

// minHostBits is how many address bits a pod CIDR must leave: 8 addresses,
// which after the network, gateway and broadcast addresses is 5 pods.
const minHostBits = 3

// notPodRanges are ranges a pod network cannot live in.
var notPodRanges = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (127.0.0.0/8)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (169.254.0.0/16)"},
	{netip.MustParsePrefix("224.0.0.0/3"), "multicast or reserved (224.0.0.0/3)"},
	{netip.MustParsePrefix("::/127"), "unspecified or loopback (::/127)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
}

// parsePodCIDR checks that s can be the subnet of the built-in network: a
// canonical IPv4 or IPv6 prefix, in a range pods can use, leaving room for
// pods.
func parsePodCIDR(s string) (netip.Prefix, error) {
	bad := func(format string, args ...any) (netip.Prefix, error) {
		return netip.Prefix{}, &ConfigError{Subject: fmt.Sprintf("pod CIDR %q", s), Err: fmt.Errorf(format, args...)}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return bad("not a CIDR such as %s or fd86::/64", DefaultPodCIDR)
	}
	if p.Addr().Is4In6() {
		return bad("an IPv4-mapped IPv6 prefix; write it as IPv4")
	}
	if p.Addr().Zone() != "" {
		return bad("a zone does not belong in a subnet")
	}
	if m := p.Masked(); m != p {
		return bad("host bits are set; did you mean %s?", m)
	}
	if host := p.Addr().BitLen() - p.Bits(); host < minHostBits {
		return bad("prefix /%d leaves room for too few pods; use /%d or shorter", p.Bits(), p.Addr().BitLen()-minHostBits)
	}
	for _, r := range notPodRanges {
		if p.Overlaps(r.prefix) {
			return bad("overlaps %s", r.what)
		}
	}
	return p, nil
}
