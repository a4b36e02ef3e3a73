package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// startProfileSeconds bounds the CPU profile of a batch's start: it begins
// just before the manifests are written and must outlast the start, which
// cannot be known in advance; a few seconds for 50 pods.
const startProfileSeconds = 40

// profiles says where to save podsup's profiles in the first round of a
// peer run; an empty path saves none.
type profiles struct {
	probeCPU, probeAllocs string // over the CPU measure's window
	startCPU, startAllocs string // of the largest batch's start
}

// peerProfiles gives the profiles of -profiles dir, or, for the deprecated
// -cpuprofile file, only the CPU measure's CPU profile.
func peerProfiles(dir, cpuFile string) (profiles, error) {
	switch {
	case dir != "" && cpuFile != "":
		return profiles{}, fmt.Errorf("-profiles and -cpuprofile: give only -profiles, which saves the CPU profile as probe-cpu.pprof")
	case cpuFile != "":
		fmt.Fprintln(os.Stderr, "bench: -cpuprofile with -peer is deprecated: -profiles DIR saves this profile as DIR/probe-cpu.pprof, with three others")
		return profiles{probeCPU: cpuFile}, nil
	case dir == "":
		return profiles{}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return profiles{}, fmt.Errorf("-profiles: %w", err)
	}
	return profiles{
		probeCPU:    filepath.Join(dir, "probe-cpu.pprof"),
		probeAllocs: filepath.Join(dir, "probe-allocs.pprof"),
		startCPU:    filepath.Join(dir, "start-cpu.pprof"),
		startAllocs: filepath.Join(dir, "start-allocs.pprof"),
	}, nil
}

// probe says whether to profile the CPU measure; podsup must then serve
// its profiles.
func (p profiles) probe() bool { return p.probeCPU != "" || p.probeAllocs != "" }

// start says whether to profile the largest batch's start.
func (p profiles) start() bool { return p.startCPU != "" || p.startAllocs != "" }

// fetchAsync starts saving the profile at url into file, unless file is
// empty, and returns what waits until it is saved (or failed, which it
// reports). Waiting more than once is fine.
func fetchAsync(url, file string) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fetchProfile(url, file); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}()
	return func() { <-done }
}

// collect makes podsup run a garbage collection, through the heap
// profile's gc parameter. A memory profile holds the allocations up to the
// last completed collection only (runtime.GC publishes them; see
// runtime.MemProfile), so one just before each end of a window makes an
// allocation profile hold the window's allocations rather than those of
// whichever collections fell in it, which in a nearly idle podsup are few
// and may hold its start-up.
func collect(pprofURL string) {
	resp, err := http.Get(pprofURL + "/heap?gc=1")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: garbage collection:", err)
		return
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
}

// fetchProfile saves the profile at url into file, unless file is empty.
func fetchProfile(url, file string) error {
	if file == "" {
		return nil
	}
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile %s: %s: %s", url, resp.Status, msg)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return f.Close()
}
