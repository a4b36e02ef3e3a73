package cni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
)

// dropMasquerade removes the bridge plugin's masquerade rules of one
// sandbox on one network: the nat POSTROUTING rules whose comment names
// both (the plugin writes `name: "<network>" id: "<sandbox>"`), and the
// chains they jump to. The plugin finds those rules through the pod's
// interface, so once the interface is gone (a DEL cut short after deleting
// it) nothing else removes them, and the rule left behind makes every later
// DEL of the sandbox fail with "chain busy". It touches nothing but rules
// with that comment, and returns how many it removed.
func dropMasquerade(ctx context.Context, network, sandboxID string) (int, error) {
	comment := fmt.Sprintf("name: %q id: %q", network, sandboxID)
	removed := 0
	var errs []error
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(tool); err != nil {
			continue // no such family on this host
		}
		out, err := exec.CommandContext(ctx, tool, "-w", "-t", "nat", "-S", "POSTROUTING").Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s -S POSTROUTING: %w", tool, err))
			continue
		}
		chains := map[string]bool{}
		for _, rule := range masqueradeRules(string(out), comment) {
			args := []string{"-w", "-t", "nat", "-D", "POSTROUTING", "-s", rule.source, "-j", rule.chain,
				"-m", "comment", "--comment", comment}
			if out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, out))
				continue
			}
			removed++
			chains[rule.chain] = true
		}
		for chain := range chains {
			for _, op := range []string{"-F", "-X"} {
				if out, err := exec.CommandContext(ctx, tool, "-w", "-t", "nat", op, chain).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("%s %s %s: %w: %s", tool, op, chain, err, out))
				}
			}
		}
	}
	return removed, errors.Join(errs...)
}

// dropMasquerade is dropMasquerade logging what it did and what failed.
func (m *Manager) dropMasquerade(ctx context.Context, log *slog.Logger, network, sandboxID string) int {
	n, err := dropMasquerade(ctx, network, sandboxID)
	if n > 0 {
		log.Info("removed masquerade rules the bridge plugin left", "network", network, "rules", n)
	}
	if err != nil {
		log.Warn("cannot remove the bridge plugin's masquerade rules", "network", network, "err", err)
	}
	return n
}

// masqueradeRule is a POSTROUTING rule of the bridge plugin.
type masqueradeRule struct{ source, chain string }

// masqueradeRules picks out of `iptables -S POSTROUTING` output the rules
// carrying comment that jump to a CNI chain.
func masqueradeRules(listing, comment string) []masqueradeRule {
	quoted := "--comment " + strconv.Quote(comment)
	var rules []masqueradeRule
	for _, line := range strings.Split(listing, "\n") {
		if !strings.HasPrefix(line, "-A POSTROUTING ") || !strings.Contains(line, quoted) {
			continue
		}
		var r masqueradeRule
		fields := strings.Fields(line)
		for i := 0; i+1 < len(fields); i++ {
			switch fields[i] {
			case "-s":
				r.source = fields[i+1]
			case "-j":
				r.chain = fields[i+1]
			}
		}
		if r.source != "" && strings.HasPrefix(r.chain, "CNI-") {
			rules = append(rules, r)
		}
	}
	return rules
}
