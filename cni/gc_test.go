package cni

import (
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestGCReleasesWhatIsNotLive(t *testing.T) {
	h := newHarness(t, fakeConflist)
	ctx := context.Background()
	before := h.manager()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := before.SetUp(ctx, testPod(id)); err != nil {
			t.Fatal(err)
		}
	}
	// podsup dies; the next one knows b is live.
	m := h.manager()
	h.fp.reset()
	if err := m.GC(ctx, map[string]bool{"b": true}); err != nil {
		t.Fatal(err)
	}
	h.assertNothingOf(m, "a", "c")
	if got := h.namespaces(); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("namespaces %v, want [b]", got)
	}
	if _, err := m.Status(ctx, "b"); err != nil {
		t.Errorf("live sandbox: %v", err)
	}
	for _, c := range h.fp.calls() {
		if c.ContainerID == "b" {
			t.Errorf("GC ran %s %s on the live sandbox", c.Cmd, c.Type)
		}
	}

	h.fp.reset()
	if err := m.GC(ctx, map[string]bool{"b": true}); err != nil || len(h.fp.calls()) != 0 {
		t.Errorf("GC with nothing stale: %v, calls %q", err, h.fp.summary())
	}

	// What this manager set up since it started is live even if the caller's
	// snapshot predates it.
	if _, err := m.SetUp(ctx, testPod("d")); err != nil {
		t.Fatal(err)
	}
	if err := m.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	h.assertNothingOf(m, "b")
	if got := h.namespaces(); !reflect.DeepEqual(got, []string{"d"}) {
		t.Errorf("namespaces %v, want [d]", got)
	}
}

func TestGCOnEmptyRoot(t *testing.T) {
	h := newHarness(t, fakeConflist)
	if err := h.manager().GC(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if len(h.fp.calls()) != 0 {
		t.Errorf("calls %q", h.fp.summary())
	}
}

// TestGCAfterInterruptedSetUp covers what a podsup killed between creating
// the namespace and libcni caching the ADD leaves: a namespace, plugins
// holding addresses, no cache. DEL runs with the current configuration.
func TestGCAfterInterruptedSetUp(t *testing.T) {
	h := newHarness(t, fakeConflist)
	ctx := context.Background()
	m := h.manager()
	nsPath := m.netnsPath("half")
	if err := h.ns.create(nsPath, "", nil); err != nil {
		t.Fatal(err)
	}
	// The first plugin ran; podsup died before the second.
	writeFiles(t, filepath.Join(h.fp.dir, "held"), map[string]string{"fake-half-eth0": ""})

	if err := h.manager().GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"DEL fakeportmap eth0 half", "DEL fake eth0 half", "DEL loopback lo half"}
	if got := h.fp.summary(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	for _, c := range h.fp.calls() {
		if c.Netns != nsPath || !strings.Contains(c.Args, "K8S_POD_INFRA_CONTAINER_ID=half") {
			t.Errorf("%s: netns %q args %q", c.Type, c.Netns, c.Args)
		}
	}
	h.assertNothingOf(m, "half")
}

// TestGCAfterSetUpCutAfterLoopback covers a podsup killed once libcni had
// cached loopback's ADD but not the pod network's: the pod network's DEL
// runs all the same, so its address is released.
func TestGCAfterSetUpCutAfterLoopback(t *testing.T) {
	h := newHarness(t, fakeConflist)
	ctx := context.Background()
	m := h.manager()
	p := testPod("cut")
	nsPath := m.netnsPath(p.SandboxID)
	if err := h.ns.create(nsPath, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.cni.AddNetworkList(ctx, m.loopback, loopbackConf(p, nsPath)); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(h.fp.dir, "held"), map[string]string{"fake-cut-eth0": ""})
	h.fp.reset()

	if err := h.manager().GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"DEL fakeportmap eth0 cut", "DEL fake eth0 cut", "DEL loopback lo cut"}
	if got := h.fp.summary(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	h.assertNothingOf(m, "cut")
}

// TestGCAfterReboot covers a machine that restarted: the namespace file is
// there but pins nothing, so DEL gets no namespace.
func TestGCAfterReboot(t *testing.T) {
	h := newHarness(t, fakeConflist)
	ctx := context.Background()
	if _, err := h.manager().SetUp(ctx, testPod("old")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(h.root, "netns"), map[string]string{"old": ""}) // the mount is gone
	h.fp.reset()
	m := h.manager()
	if err := m.GC(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := len(h.fp.calls()); got != 3 {
		t.Errorf("calls %q, want three DELs", h.fp.summary())
	}
	for _, c := range h.fp.calls() {
		if c.Cmd != "DEL" || c.Netns != "" {
			t.Errorf("%s %s with netns %q; want DEL without one", c.Cmd, c.Type, c.Netns)
		}
	}
	h.assertNothingOf(m, "old")
}

// TestGCReleasesOrphanAllocations covers addresses host-local holds for the
// built-in network when the cache and namespace that would lead a DEL to
// them are gone.
func TestGCReleasesOrphanAllocations(t *testing.T) {
	h := newHarness(t, "")
	ipam := filepath.Join(h.root, "cni", "ipam", "podsup")
	writeFiles(t, ipam, map[string]string{
		"10.86.0.7":          "gone1\r\neth0",
		"10.86.0.8":          "live1\r\neth0",
		"10.86.0.9":          "gone2", // plugins before 0.8 wrote the ID alone
		"fd86::9":            "gone3\r\neth0",
		"lock":               "",
		"last_reserved_ip.0": "10.86.0.9",
	})
	m := h.manager()
	allocs, err := hostLocalAllocations(filepath.Join(h.root, "cni", "ipam"))
	if err != nil {
		t.Fatal(err)
	}
	var owners []string
	for _, a := range allocs {
		owners = append(owners, a.owner+"@"+a.ip.String())
	}
	sort.Strings(owners)
	if want := []string{"gone1@10.86.0.7", "gone2@10.86.0.9", "gone3@fd86::9", "live1@10.86.0.8"}; !reflect.DeepEqual(owners, want) {
		t.Errorf("allocations %v, want %v", owners, want)
	}

	if err := m.GC(context.Background(), map[string]bool{"live1": true}); err != nil {
		t.Fatal(err)
	}
	left := dirNames(t, ipam)
	if want := []string{"10.86.0.8", "last_reserved_ip.0", "lock"}; !reflect.DeepEqual(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	// Orphans have nothing else to release: no plugin should have run for
	// the live one, and the released ones have no namespace to DEL in.
	for _, c := range h.fp.calls() {
		if c.ContainerID == "live1" || slices.Contains([]string{"gone1", "gone2", "gone3"}, c.ContainerID) {
			t.Errorf("ran %s %s for %s", c.Cmd, c.Type, c.ContainerID)
		}
	}
}
