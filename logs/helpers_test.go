package logs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/internal/testenv"
)

// t0 is the time of the CRI format's own example.
var t0 = time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// stamp formats t as records carry it.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// cri is one record as a writer writes it.
func cri(t time.Time, stream, tag, msg string) string {
	return stamp(t) + " " + stream + " " + tag + " " + msg + "\n"
}

// newTestWriter opens a Writer on path with a fake clock at t0.
func newTestWriter(t *testing.T, path string, opts ...Option) (*Writer, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(t0)
	w, err := NewWriter(path, append([]Option{WithClock(clk), WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, clk
}

func mustWrite(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(s), n, err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeLog writes a log file from records.
func writeLog(t *testing.T, path string, records ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Join(records, "")), 0o640); err != nil {
		t.Fatal(err)
	}
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// read runs a ReadContainer that does not follow.
func read(t *testing.T, dir string, opts ReadOptions) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := ReadContainer(context.Background(), dir, opts, &out)
	return out.String(), err
}

// waitLimit bounds a wait for the code under test to get somewhere: long
// enough for a loaded machine, and still an end when it never does.
const waitLimit = time.Minute

// waitFor waits until the output is want, and fails if it becomes
// something else that is not a prefix of want, or takes over waitLimit.
func waitOutput(t *testing.T, b *testenv.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got := b.String()
		if got == want {
			return
		}
		if !strings.HasPrefix(want, got) || time.Now().After(deadline) {
			t.Fatalf("follow output:\n%q\nwant:\n%q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
