//go:build integration

package e2e

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// summary collects the figures of the reliability suite (faults injected,
// pods converged, leaks found, bad inputs refused, resources at the start
// and the end), printed as one table after all tests ran.
var summary = &summaryTable{}

type summaryTable struct {
	mu   sync.Mutex
	rows map[string][]summaryRow
}

// summaryRow is one measured figure of one test.
type summaryRow struct {
	what, value string
}

// record adds a figure under the test's name.
func (s *summaryTable) record(test, what string, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rows == nil {
		s.rows = map[string][]summaryRow{}
	}
	s.rows[test] = append(s.rows[test], summaryRow{what, fmt.Sprintf(format, args...)})
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
	b.WriteString("\n== reliability summary\n| test | figure | value |\n|---|---|---|\n")
	for _, t := range tests {
		for _, r := range s.rows[t] {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", t, r.what, r.value)
		}
	}
	io.WriteString(w, b.String())
}
