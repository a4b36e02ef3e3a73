package runtime

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/internal/testenv"
)

// shimWriters opens the output path for writing twice, as the shim does
// for stdout and stderr.
func shimWriters(t *testing.T, o *execOutput) (stdout, stderr *os.File) {
	t.Helper()
	cfg := o.Config()
	if cfg.Stdout != cfg.Stderr || cfg.Stdin != "" || cfg.Terminal {
		t.Fatalf("config %+v: want stdout and stderr one path, no stdin", cfg)
	}
	var err error
	if stdout, err = os.OpenFile(cfg.Stdout, os.O_WRONLY, 0); err != nil {
		t.Fatal(err)
	}
	if stderr, err = os.OpenFile(cfg.Stderr, os.O_WRONLY, 0); err != nil {
		t.Fatal(err)
	}
	return stdout, stderr
}

func waitDone(t *testing.T, o *execOutput, what string) {
	t.Helper()
	if _, ok := testenv.Poll(time.Minute, closed(o.done)); !ok {
		t.Fatalf("the copy did not end within a minute of %s", what)
	}
}

// closed is a condition for testenv.Poll: ch is closed.
func closed(ch <-chan struct{}) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}

// TestExecOutputOneFIFO: what the shim writes to stdout and stderr is
// copied in the order written, also what comes after every writer of the
// shim closed once (it opens stderr after stdout's copy may have ended);
// the copy ends after Cancel, and Close removes the FIFO.
func TestExecOutputOneFIFO(t *testing.T) {
	out := NewHeadBuffer(100)
	o, err := newExecOutput(t.TempDir(), "exec-1", out, clock.RealClock{})
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := shimWriters(t, o)
	io.WriteString(stdout, "out1 ")
	stdout.Close()
	stderr.Close() // no writer of the shim's is left now
	stderr, err = os.OpenFile(o.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(stderr, "err1")
	stderr.Close()
	select {
	case <-o.done:
		t.Fatal("the copy ended before Cancel")
	default:
	}
	o.Cancel()
	o.Wait()
	if got := string(out.Bytes()); got != "out1 err1" {
		t.Errorf("output %q, want %q", got, "out1 err1")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(o.path); !os.IsNotExist(err) {
		t.Errorf("the FIFO is still there after Close: %v", err)
	}
}

// TestExecOutputWaitBounded: a writer the shim never closes holds Wait
// only until drainTimeout, on the runtime's clock.
func TestExecOutputWaitBounded(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	o, err := newExecOutput(t.TempDir(), "exec-1", NewHeadBuffer(10), clk)
	if err != nil {
		t.Fatal(err)
	}
	stdout, _ := shimWriters(t, o)
	defer stdout.Close()
	o.Cancel()
	waited := make(chan struct{})
	go func() {
		o.Wait()
		close(waited)
	}()
	if _, ok := testenv.Poll(time.Minute, clk.HasWaiters); !ok {
		t.Fatal("Wait set no timer on the clock within a minute")
	}
	clk.Step(drainTimeout)
	if _, ok := testenv.Poll(time.Minute, closed(waited)); !ok {
		t.Fatal("Wait did not return within a minute of the drain timeout")
	}
	o.Close()
}

// TestExecOutputClosedUnopened: an exec that failed before the shim opened
// its output ends the copy on Close, so nothing waits for it.
func TestExecOutputClosedUnopened(t *testing.T) {
	o, err := newExecOutput(t.TempDir(), "exec-1", NewHeadBuffer(10), clock.RealClock{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, o, "Close")
}

// TestRemoveExecOutputs: output FIFOs an earlier podsup left are removed
// at start; the containers' log FIFOs beside them are not.
func TestRemoveExecOutputs(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, "exec-7"+execOutputSuffix)
	logs := filepath.Join(dir, "c1", "stdout")
	if err := os.MkdirAll(filepath.Dir(logs), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{left, logs} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removeExecOutputs(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := os.Lstat(left); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", left, err)
	}
	if _, err := os.Lstat(logs); err != nil {
		t.Errorf("a container's FIFO went too: %v", err)
	}
}

// BenchmarkExecOutput is the output of one quick exec: the FIFO made and
// opened, a line written and copied, the FIFO closed and removed. It
// reports the bytes allocated per exec.
func BenchmarkExecOutput(b *testing.B) {
	dir := b.TempDir()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		o, err := newExecOutput(dir, "exec", NewHeadBuffer(100), clock.RealClock{})
		if err != nil {
			b.Fatal(err)
		}
		w, err := os.OpenFile(o.path, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		io.WriteString(w, "ok\n")
		w.Close()
		o.Cancel()
		o.Wait()
		o.Close()
	}
}
