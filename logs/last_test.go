package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLastLines: the kubelet's limits, lines then bytes; P records joined,
// stdout and stderr interleaved; a large log read from its end only.
func TestLastLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := LastLines(filepath.Join(t.TempDir(), "none.log"), 80, 2048); got != "" || err != nil {
		t.Errorf("missing file: %q, %v", got, err)
	}
	write("")
	if got, _ := LastLines(path, 80, 2048); got != "" {
		t.Errorf("empty file: %q", got)
	}

	write(cri(t0, "stdout", "F", "starting") + cri(t0, "stderr", "P", "pan") + cri(t0, "stdout", "F", "between") + cri(t0, "stderr", "F", "ic: boom"))
	if got, _ := LastLines(path, 80, 2048); got != "starting\nbetween\npanic: boom\n" {
		t.Errorf("got %q", got)
	}
	if got, _ := LastLines(path, 2, 2048); got != "between\npanic: boom\n" {
		t.Errorf("2 lines: %q", got)
	}
	if got, _ := LastLines(path, 80, 6); got != " boom\n" {
		t.Errorf("6 bytes: %q", got)
	}

	var b strings.Builder
	for i := range 10000 {
		b.WriteString(cri(t0, "stdout", "F", fmt.Sprintf("line %d", i)))
	}
	write(b.String())
	got, err := LastLines(path, 80, 2048)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 80 || lines[0] != "line 9920" || lines[79] != "line 9999" {
		t.Errorf("a long log: %d lines, %q ... %q; want lines 9920 to 9999", len(lines), lines[0], lines[len(lines)-1])
	}
}
