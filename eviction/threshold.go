// Package eviction protects the machine from running out of memory, disk
// or process IDs, as the kubelet's eviction manager does: it compares what
// the node has left with thresholds, reports pressure as node conditions,
// reclaims what it can without touching pods, and then evicts pods one at a
// time, the least important first. Unlike the kubelet, which never evicts
// static pods, it evicts any pod but the critical ones; the pod runs again
// when the pressure is gone.
package eviction

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Signal is something the node can run short of.
type Signal string

// The signals podsup watches, named as the kubelet names them.
const (
	MemoryAvailable   Signal = "memory.available"
	NodeFsAvailable   Signal = "nodefs.available"
	NodeFsInodesFree  Signal = "nodefs.inodesFree"
	ImageFsAvailable  Signal = "imagefs.available"
	ImageFsInodesFree Signal = "imagefs.inodesFree"
	PIDAvailable      Signal = "pid.available"
)

// signals lists the signals in the order they are acted on: memory first,
// as a node out of memory fails fastest.
var signals = []Signal{MemoryAvailable, PIDAvailable, NodeFsAvailable, NodeFsInodesFree, ImageFsAvailable, ImageFsInodesFree}

func knownSignal(s Signal) bool {
	for _, k := range signals {
		if k == s {
			return true
		}
	}
	return false
}

// Value is an amount of a signal: an absolute quantity, or a percentage of
// the capacity.
type Value struct {
	Quantity   *resource.Quantity
	Percentage float64 // in (0, 1]; used when Quantity is nil
}

// amount is the value against a capacity.
func (v Value) amount(capacity uint64) uint64 {
	if v.Quantity != nil {
		return uint64(max(v.Quantity.Value(), 0))
	}
	return uint64(v.Percentage * float64(capacity))
}

func (v Value) String() string {
	if v.Quantity != nil {
		return v.Quantity.String()
	}
	return strconv.FormatFloat(v.Percentage*100, 'f', -1, 64) + "%"
}

// Threshold is met when the signal's available amount falls below Value.
type Threshold struct {
	Signal Signal
	Value  Value
	// GracePeriod is how long a soft threshold must hold before pods are
	// evicted; zero for a hard one.
	GracePeriod time.Duration
	// MinReclaim is how much beyond the threshold eviction frees once it
	// started, so that it does not stop just under the line.
	MinReclaim *Value
	Soft       bool
}

func (t Threshold) String() string { return string(t.Signal) + "<" + t.Value.String() }

// DefaultHard is the kubelet's default --eviction-hard.
const DefaultHard = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%"

// Config is the eviction flags, parsed.
type Config struct {
	Thresholds []Threshold
	// MaxPodGracePeriod bounds the grace period of a pod evicted for a
	// soft threshold (negative: the pod's own); pods evicted for a hard
	// one get none.
	MaxPodGracePeriod int64
	// TransitionPeriod is how long a pressure condition stays after the
	// last time its threshold was met, so that it does not flap.
	TransitionPeriod time.Duration
	// Housekeeping is how often the node is measured.
	Housekeeping time.Duration
}

// ParseConfig reads the eviction flags as the kubelet does. Each error names
// its flag and what is wrong.
func ParseConfig(hard, soft, softGrace, minReclaim string) ([]Threshold, error) {
	hardList, err := parseThresholds("--eviction-hard", hard)
	if err != nil {
		return nil, err
	}
	softList, err := parseThresholds("--eviction-soft", soft)
	if err != nil {
		return nil, err
	}
	graces, err := parseMap("--eviction-soft-grace-period", softGrace)
	if err != nil {
		return nil, err
	}
	reclaims, err := parseMap("--eviction-minimum-reclaim", minReclaim)
	if err != nil {
		return nil, err
	}
	for i := range softList {
		t := &softList[i]
		t.Soft = true
		g, ok := graces[t.Signal]
		if !ok {
			return nil, fmt.Errorf("--eviction-soft %s: no grace period for %s in --eviction-soft-grace-period", t, t.Signal)
		}
		d, err := time.ParseDuration(g)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--eviction-soft-grace-period %s=%s: want a duration such as 1m30s", t.Signal, g)
		}
		t.GracePeriod = d
		delete(graces, t.Signal)
	}
	for s := range graces {
		return nil, fmt.Errorf("--eviction-soft-grace-period %s: no soft threshold for it in --eviction-soft", s)
	}
	all := append(hardList, softList...)
	for s, v := range reclaims {
		val, err := parseValue(v)
		if err != nil {
			return nil, fmt.Errorf("--eviction-minimum-reclaim %s=%s: %w", s, v, err)
		}
		found := false
		for i := range all {
			if all[i].Signal == s {
				all[i].MinReclaim, found = &val, true
			}
		}
		if !found {
			return nil, fmt.Errorf("--eviction-minimum-reclaim %s: no threshold for it", s)
		}
	}
	return all, nil
}

// parseThresholds reads "signal<value,..." and refuses unknown signals,
// other operators, bad values and a signal given twice.
func parseThresholds(flag, spec string) ([]Threshold, error) {
	var out []Threshold
	seen := map[Signal]bool{}
	for _, item := range splitList(spec) {
		name, value, ok := strings.Cut(item, "<")
		if !ok {
			return nil, fmt.Errorf("%s %q: want SIGNAL<VALUE, such as memory.available<100Mi", flag, item)
		}
		s := Signal(strings.TrimSpace(name))
		if !knownSignal(s) {
			return nil, fmt.Errorf("%s %q: unknown signal %q; want one of %s", flag, item, s, signalNames())
		}
		if seen[s] {
			return nil, fmt.Errorf("%s: %s given twice", flag, s)
		}
		seen[s] = true
		v, err := parseValue(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, item, err)
		}
		out = append(out, Threshold{Signal: s, Value: v})
	}
	return out, nil
}

// parseMap reads "signal=value,...".
func parseMap(flag, spec string) (map[Signal]string, error) {
	out := map[Signal]string{}
	for _, item := range splitList(spec) {
		name, value, ok := strings.Cut(item, "=")
		s := Signal(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("%s %q: want SIGNAL=VALUE", flag, item)
		}
		if !knownSignal(s) {
			return nil, fmt.Errorf("%s %q: unknown signal %q; want one of %s", flag, item, s, signalNames())
		}
		if _, dup := out[s]; dup {
			return nil, fmt.Errorf("%s: %s given twice", flag, s)
		}
		out[s] = strings.TrimSpace(value)
	}
	return out, nil
}

// parseValue reads a quantity (100Mi, 1G, 1000) or a percentage (10%).
func parseValue(s string) (Value, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 100 {
			return Value{}, fmt.Errorf("percentage %q: want more than 0%% and at most 100%%", s)
		}
		return Value{Percentage: f / 100}, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return Value{}, fmt.Errorf("quantity %q: want a size such as 100Mi or a percentage such as 10%%", s)
	}
	if q.Sign() < 0 {
		return Value{}, fmt.Errorf("quantity %q: must not be negative", s)
	}
	return Value{Quantity: &q}, nil
}

func splitList(spec string) []string {
	var out []string
	for _, item := range strings.Split(spec, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func signalNames() string {
	names := make([]string, len(signals))
	for i, s := range signals {
		names[i] = string(s)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
