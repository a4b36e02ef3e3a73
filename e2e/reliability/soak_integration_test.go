//go:build integration

package reliability

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// TestReliabilitySoak runs pods with exec, HTTP and TCP probes (readiness
// and liveness) on a real CNI network while their manifests are edited at
// random, a probe's period here, a container's command there, and compares
// podsup's resident memory, open files and goroutines after convergence at
// the start and at the end: growth beyond noise is a leak. The CI form is
// 30 pods for 2 minutes; PODSUP_SOAK=long runs 100 pods for 10 minutes:
//
//	PODSUP_SOAK=long go test -race -count=1 -tags integration -timeout 30m -run TestReliabilitySoak -v ./e2e/reliability
func TestReliabilitySoak(t *testing.T) {
	t.Parallel()
	pods, duration := 30, 2*time.Minute
	if os.Getenv("PODSUP_SOAK") == "long" {
		pods, duration = 100, 10*time.Minute
	}
	e := newEnv(t)
	names := map[string]bool{}
	version := make([]int, pods)
	for i := range pods {
		name := fmt.Sprintf("s%d", i)
		names[name] = true
		e.Write(name+".yaml", soakPod(name, i, 0))
	}
	e.Start("--profiling")
	patience := max(harness.Patience, time.Duration(pods)*6*time.Second)
	took := e.WaitConvergedWithin(names, patience)
	time.Sleep(5 * time.Second) // the first probe results are in
	start := e.settledUsage()
	e.keepHoldings("start")
	t.Logf("%d pods converged in %s; podsup: %s", pods, took.Round(time.Millisecond), start)

	// What counts as growth beyond noise. Goroutines: each pod has a
	// worker, probe workers and log copiers, and some come and go with a
	// probe or a restart in flight, so +10% or +20, whichever is more; a
	// leak of one per edit would be hundreds. Files: podsup holds a fixed
	// number per container (log FIFOs, the shim connection) plus idle
	// connections of HTTP probes, so +10% or +10. RSS: the Go heap and the
	// race detector's shadow memory grow in steps as the garbage collector
	// paces itself; +50% is far beyond that and far below a leak per probe
	// run (tens of thousands of probes ran).
	limits := usage{
		goroutines: max(start.goroutines+20, start.goroutines*11/10),
		fds:        max(start.fds+10, start.fds*11/10),
		rssKiB:     start.rssKiB * 3 / 2,
	}
	edits, restarts := 0, 0
	for deadline := time.Now().Add(duration); time.Now().Before(deadline); time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond) {
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", e.Proc.Process.Pid)); err != nil || strings.Contains(string(stat), ") Z ") {
			t.Fatalf("podsup exited; see %s", e.ProcLog.Name())
		}
		i := rand.IntN(pods)
		version[i]++
		if version[i]%2 == 0 {
			restarts++ // an even version changes the command
		}
		e.Write(fmt.Sprintf("s%d.yaml", i), soakPod(fmt.Sprintf("s%d", i), i, version[i]))
		edits++
	}
	e.WaitConvergedWithin(names, patience)
	// Probe workers of replaced containers and idle connections end in
	// their own time, later on a busy machine: usage is read until it is
	// within the limits, or for harness.Patience, and the least seen counts.
	end := e.usageWithin(limits)
	t.Logf("after %s and %d edits (%d restarting a container): podsup: %s", duration, edits, restarts, end)
	leaks := e.LeaksAfter(names)
	for _, l := range leaks {
		t.Error(l)
	}

	if end.goroutines > limits.goroutines || end.fds > limits.fds {
		e.keepHoldings("end")
	}
	if end.goroutines > limits.goroutines {
		t.Errorf("goroutines grew from %d to %d (limit %d)", start.goroutines, end.goroutines, limits.goroutines)
	}
	if end.fds > limits.fds {
		t.Errorf("open files grew from %d to %d (limit %d)", start.fds, end.fds, limits.fds)
	}
	if end.rssKiB > limits.rssKiB {
		t.Errorf("RSS grew from %d KiB to %d KiB (limit %d KiB)", start.rssKiB, end.rssKiB, limits.rssKiB)
	}

	harness.Record(t, "pods with probes, duration", "%d pods, %s (%s)", pods, duration, map[bool]string{true: "long form", false: "CI form"}[pods > 30])
	harness.Record(t, "initial convergence", "%s", took.Round(time.Millisecond))
	harness.Record(t, "manifest edits (restarting a container)", "%d (%d)", edits, restarts)
	harness.Record(t, "podsup RSS start / end", "%d / %d KiB", start.rssKiB, end.rssKiB)
	harness.Record(t, "podsup open fds start / end", "%d / %d", start.fds, end.fds)
	harness.Record(t, "podsup goroutines start / end", "%d / %d", start.goroutines, end.goroutines)
	harness.Record(t, "leaks found", "%d", len(leaks))
}

// soakPod is a pod serving HTTP on 8080 with a readiness and a liveness
// probe: exec, HTTP or TCP by i. An odd version changes the readiness
// probe's period (applied without a restart), an even one the command.
func soakPod(name string, i, version int) string {
	var probe string
	switch i % 3 {
	case 0:
		probe = "exec: {command: [test, -f, /tmp/www/index.html]}"
	case 1:
		probe = "httpGet: {path: /, port: 8080}"
	default:
		probe = "tcpSocket: {port: 8080}"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: %s
    command: [sh, -c, 'mkdir -p /tmp/www && echo v%d > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
    readinessProbe: {%s, periodSeconds: %d}
    livenessProbe: {%s, periodSeconds: 10, failureThreshold: 3}
`, name, testenv.BusyboxRef, version/2, probe, 3+version%2, probe)
}

// usage is what podsup holds.
type usage struct {
	rssKiB, fds, goroutines int
}

func (u usage) String() string {
	return fmt.Sprintf("RSS %d KiB, %d open files, %d goroutines", u.rssKiB, u.fds, u.goroutines)
}

// usageWithin reads usage, keeping the least of each measure, until all
// are within limits or harness.Patience has passed: what is in flight ends,
// however busy the machine, while what leaks stays in every reading.
func (e *env) usageWithin(limits usage) usage {
	least := e.usage()
	for start := time.Now(); time.Since(start) < harness.Patience; time.Sleep(time.Second) {
		if least.goroutines <= limits.goroutines && least.fds <= limits.fds && least.rssKiB <= limits.rssKiB {
			break
		}
		u := e.usage()
		least = usage{rssKiB: min(least.rssKiB, u.rssKiB), fds: min(least.fds, u.fds), goroutines: min(least.goroutines, u.goroutines)}
	}
	return least
}

// settledUsage is the least usage of five readings a second apart: a probe
// in flight holds a goroutine and a connection for a moment, more of them
// the busier the machine, while what leaks stays in every reading.
func (e *env) settledUsage() usage {
	least := e.usage()
	for range 4 {
		time.Sleep(time.Second)
		u := e.usage()
		least = usage{rssKiB: min(least.rssKiB, u.rssKiB), fds: min(least.fds, u.fds), goroutines: min(least.goroutines, u.goroutines)}
	}
	return least
}

// keepHoldings writes podsup's goroutines (grouped by stack) and open
// files beside its log, which a failing test keeps, so that growth can be
// told apart from noise by comparing the "start" and "end" files.
func (e *env) keepHoldings(when string) {
	_, body, err := e.ReadOnlyClient().Do("GET", "/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		e.t.Logf("goroutine dump: %v", err)
	}
	os.WriteFile(filepath.Join(e.Root, "podsup-goroutines-"+when+".log"), []byte(body), 0o644)
	dir := fmt.Sprintf("/proc/%d/fd", e.Proc.Process.Pid)
	fds, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, fd := range fds {
		target, _ := os.Readlink(filepath.Join(dir, fd.Name()))
		fmt.Fprintf(&b, "%s %s\n", fd.Name(), target)
	}
	os.WriteFile(filepath.Join(e.Root, "podsup-fds-"+when+".log"), []byte(b.String()), 0o644)
}

// usage reads podsup's RSS and open files from /proc, and its goroutines
// from the Go collector on /metrics.
func (e *env) usage() usage {
	e.t.Helper()
	pid := e.Proc.Process.Pid
	var u usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rssKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		e.t.Fatal(err)
	}
	u.fds = len(fds)
	body := e.ReadOnlyClient().Must(e.t, "GET", "/metrics", "", 200)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			u.goroutines, _ = strconv.Atoi(v)
		}
	}
	if u.rssKiB == 0 || u.goroutines == 0 {
		e.t.Fatalf("cannot read podsup's usage: %+v", u)
	}
	return u
}
