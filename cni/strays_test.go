package cni

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestStrayPlugins(t *testing.T) {
	proc := t.TempDir()
	procs := map[string][]string{
		"10":   {"PATH=/bin", "CNI_COMMAND=ADD", "CNI_NETNS=/var/lib/podsup/netns/abc_pause.0"}, // bridge
		"11":   {"CNI_COMMAND=ADD", "CNI_NETNS=/var/lib/podsup/netns/abc_pause.0"},              // the host-local it runs
		"12":   {"CNI_COMMAND=DEL", "CNI_NETNS=/var/lib/other/netns/x_pause.0"},                 // another podsup's
		"13":   {"CNI_NETNS_X=/var/lib/podsup/netns/abc"},
		"14":   {"HOME=/root"},
		"self": {"CNI_NETNS=/var/lib/podsup/netns/abc_pause.0"},
	}
	for pid, env := range procs {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "environ"), []byte(strings.Join(env, "\x00")+"\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(proc, "15"), 0o755); err != nil { // a kernel thread: no environ
		t.Fatal(err)
	}
	got := strayPlugins(proc, "/var/lib/podsup/netns")
	slices.Sort(got)
	if !slices.Equal(got, []int{10, 11}) {
		t.Errorf("strayPlugins = %v, want [10 11]", got)
	}
}
