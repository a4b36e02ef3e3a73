//go:build integration

package lifecycle

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podsup/podsup/e2e/harness"
)

// TestGracefulRestartKeepsLogging stops podsup as a service manager does
// and starts it again: the containers keep running and their output keeps
// reaching the same log file, with nothing lost across the gap.
func TestGracefulRestartKeepsLogging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	names := map[string]bool{"ticker": true}
	e.Write("ticker.yaml", harness.SleeperPod("ticker", "i=0; trap 'exit 0' TERM; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"))
	e.Start()
	e.WaitConverged(names)
	logs, _ := filepath.Glob(filepath.Join(e.Logs, "default_ticker-node1_*", "main", "0.log"))
	if len(logs) != 1 {
		t.Fatalf("log files %v", logs)
	}
	before := e.Tasks()
	for cycle := 0; cycle < 2; cycle++ {
		e.Stop()
		time.Sleep(time.Second) // the container writes while podsup is away
		e.Start()
		e.WaitConverged(names)
	}
	if after := e.Tasks(); len(after) != len(before) {
		t.Fatalf("tasks changed across restarts: %v -> %v", before, after)
	}
	// Every tick from 1 to the last one is there once, in order, and the
	// log goes on after the restarts.
	var ticks int
	harness.WaitFor(t, "30 ticks logged", func() bool {
		data, err := os.ReadFile(logs[0])
		if err != nil {
			t.Fatal(err)
		}
		data = data[:bytes.LastIndexByte(data, '\n')+1] // the last line may be half written
		if len(data) == 0 {
			return false
		}
		ticks = 0
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			_, msg, _ := strings.Cut(line, " stdout F ")
			if msg != "tick "+strconv.Itoa(ticks+1) {
				t.Fatalf("after tick %d the log has %q", ticks, line)
			}
			ticks++
		}
		return ticks >= 30
	})
	t.Logf("%d ticks logged across two graceful restarts, none lost or repeated", ticks)
}
