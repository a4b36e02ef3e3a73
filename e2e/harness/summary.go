//go:build integration

package harness

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// summary collects the figures the tests record (faults injected, pods
// converged, leaks found, bad inputs refused, how long things took),
// printed as one table per package after its tests ran.
var summary = &summaryTable{}

type summaryTable struct {
	mu   sync.Mutex
	rows map[string][]summaryRow
}

// summaryRow is one measured figure of one test.
type summaryRow struct {
	what, value string
}

// Record adds a figure under the test's name. Figures are what the suite
// measures; a test asserts behaviour, never how fast it came.
func Record(t testing.TB, what string, format string, args ...any) {
	summary.mu.Lock()
	defer summary.mu.Unlock()
	if summary.rows == nil {
		summary.rows = map[string][]summaryRow{}
	}
	summary.rows[t.Name()] = append(summary.rows[t.Name()], summaryRow{what, fmt.Sprintf(format, args...)})
}

// print writes the table, tests in name order, nothing when no test
// recorded a figure.
func (s *summaryTable) print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rows) == 0 {
		return
	}
	tests := make([]string, 0, len(s.rows))
	for t := range s.rows {
		tests = append(tests, t)
	}
	sort.Strings(tests)
	var b strings.Builder
	b.WriteString("| test | figure | value |\n|---|---|---|\n")
	for _, t := range tests {
		for _, r := range s.rows[t] {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", t, r.what, r.value)
		}
	}
	io.WriteString(w, b.String())
}

// write prints the table, and, since go test shows a passing package's
// output only with -v, also writes it to a file of its own in
// PODSUP_SUMMARY_DIR, which hack/test.sh prints after the suite.
func (s *summaryTable) write() {
	s.print(os.Stdout)
	dir := os.Getenv("PODSUP_SUMMARY_DIR")
	if dir == "" {
		return
	}
	if f, err := os.CreateTemp(dir, "summary-*.md"); err == nil {
		s.print(f)
		f.Close()
	}
}
