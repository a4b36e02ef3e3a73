//go:build integration

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGracefulRestartKeepsLogging stops podsup as a service manager does
// and starts it again: the containers keep running and their output keeps
// reaching the same log file, with nothing lost across the gap.
func TestGracefulRestartKeepsLogging(t *testing.T) {
	e := newEnv(t)
	names := map[string]bool{"ticker": true}
	e.write("ticker.yaml", sleeperPod("ticker", "i=0; trap 'exit 0' TERM; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"))
	e.start()
	e.waitConverged(names, 60*time.Second)
	logs, _ := filepath.Glob(filepath.Join(e.logs, "default_ticker-node1_*", "main", "0.log"))
	if len(logs) != 1 {
		t.Fatalf("log files %v", logs)
	}
	before := e.tasks()
	for cycle := 0; cycle < 2; cycle++ {
		e.stop()
		time.Sleep(time.Second) // the container writes while podsup is away
		e.start()
		e.waitConverged(names, 60*time.Second)
	}
	time.Sleep(time.Second)
	if after := e.tasks(); len(after) != len(before) {
		t.Fatalf("tasks changed across restarts: %v -> %v", before, after)
	}
	data, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Every tick from 1 to the last one is there once, in order.
	want := 1
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		_, msg, _ := strings.Cut(line, " stdout F ")
		if msg != "tick "+strconv.Itoa(want) {
			t.Fatalf("after tick %d the log has %q", want-1, line)
		}
		want++
	}
	if want < 30 {
		t.Errorf("only %d ticks logged", want-1)
	}
	t.Logf("%d ticks logged across two graceful restarts, none lost or repeated", want-1)
}
