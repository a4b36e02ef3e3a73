package logs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/internal/testenv"
)

// following is a follow running in the background.
type following struct {
	out    *testenv.SyncBuffer
	clock  *clocktesting.FakeClock
	cancel context.CancelFunc
	done   chan error
}

// follow starts a follow of dir. Its clock is fake and never moves unless
// the test moves it, so with the real watch, notifications alone drive it.
func follow(t *testing.T, dir string, opts ReadOptions, watch func(string) (*fsnotify.Watcher, error)) *following {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &following{out: &testenv.SyncBuffer{}, clock: clocktesting.NewFakeClock(t0), cancel: cancel, done: make(chan error, 1)}
	opts.Follow, opts.Clock = true, f.clock
	go func() { f.done <- readContainer(ctx, dir, opts, f.out, watch) }()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	return f
}

// lines returns "<stream>-<i>\n" for i in [from, to).
func lines(stream string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s-%d\n", stream, i)
	}
	return b.String()
}

func TestFollowGrowingFile(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, FilePath(dir, 0))
	s := w.Stream(Stdout)
	mustWrite(t, s, lines("stdout", 0, 3))
	f := follow(t, dir, ReadOptions{TailLines: 2}, watchDir)
	waitOutput(t, f.out, lines("stdout", 1, 3))
	mustWrite(t, s, lines("stdout", 3, 5))
	waitOutput(t, f.out, lines("stdout", 1, 5))
	mustWrite(t, s, "half a ")
	mustWrite(t, s, "line\n")
	waitOutput(t, f.out, lines("stdout", 1, 5)+"half a line\n")
}

func TestFollowAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, FilePath(dir, 0), WithMaxSize(500), WithMaxFiles(1000))
	s := w.Stream(Stdout)
	mustWrite(t, s, lines("stdout", 0, 5))
	f := follow(t, dir, ReadOptions{TailLines: -1}, watchDir)
	for i := 5; i < 404; i += 7 {
		mustWrite(t, s, lines("stdout", i, i+7))
		if i%70 == 5 {
			time.Sleep(time.Millisecond) // let the follow catch up at times, and lag at others
		}
	}
	waitOutput(t, f.out, lines("stdout", 0, 404))
	if st := w.Stats(); st.Rotations < 10 {
		t.Errorf("only %d rotations", st.Rotations)
	}
}

// TestFollowFallingBehind follows a log rotated faster than it is read,
// with rotated files deleted before the follow gets to them: lines are
// lost, but none is output twice or out of order, and the follow keeps up
// in the end.
func TestFollowFallingBehind(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, FilePath(dir, 0), WithMaxSize(300), WithMaxFiles(2))
	s := w.Stream(Stdout)
	f := follow(t, dir, ReadOptions{TailLines: -1}, watchDir)
	waitForWatch(t, f)
	const n = 3000
	mustWrite(t, s, lines("stdout", 0, n))
	deadline := time.Now().Add(waitLimit)
	for !strings.HasSuffix(f.out.String(), fmt.Sprintf("stdout-%d\n", n-1)) {
		if time.Now().After(deadline) {
			t.Fatalf("follow never got to the last line; output ends %q", f.out.String()[max(len(f.out.String())-100, 0):])
		}
		time.Sleep(5 * time.Millisecond)
	}
	last := -1
	for _, line := range strings.Fields(f.out.String()) {
		var i int
		if _, err := fmt.Sscanf(line, "stdout-%d", &i); err != nil || i <= last {
			t.Fatalf("line %q after stdout-%d", line, last)
		}
		last = i
	}
}

func TestFollowIntoNextInstance(t *testing.T) {
	dir := t.TempDir()
	w0, _ := newTestWriter(t, FilePath(dir, 0))
	mustWrite(t, w0.Stream(Stdout), lines("stdout", 0, 2))
	f := follow(t, dir, ReadOptions{TailLines: -1}, watchDir)
	waitOutput(t, f.out, lines("stdout", 0, 2))
	mustWrite(t, w0.Stream(Stderr), "last words")
	w0.Close()
	// The container restarted, and its new instance rotated at once.
	w1, _ := newTestWriter(t, FilePath(dir, 1), WithMaxSize(100))
	mustWrite(t, w1.Stream(Stdout), lines("stdout", 2, 6))
	waitOutput(t, f.out, lines("stdout", 0, 2)+"last words\n"+lines("stdout", 2, 6))
}

// TestFollowLineSpanningTail starts a follow with TailLines 0 while a long
// line is half written: the line is output whole once it ends.
func TestFollowLineSpanningTail(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, FilePath(dir, 0))
	out, errs := w.Stream(Stdout), w.Stream(Stderr)
	long := strings.Repeat("x", MaxLineSize+10)
	mustWrite(t, out, "before\n"+long)
	mustWrite(t, errs, "err-before\n")
	f := follow(t, dir, ReadOptions{TailLines: 0}, watchDir)
	waitForWatch(t, f)
	mustWrite(t, errs, "err-after\n")
	mustWrite(t, out, "end\n")
	waitOutput(t, f.out, "err-after\n"+long+"end\n")
}

// waitForWatch waits until a follow is waiting for news, and so watches its
// directory.
func waitForWatch(t *testing.T, f *following) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !f.clock.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("follow never waited")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFollowTruncatedFile goes on from the start of a file someone
// truncated.
func TestFollowTruncatedFile(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, FilePath(dir, 0))
	s := w.Stream(Stdout)
	mustWrite(t, s, lines("stdout", 0, 3))
	f := follow(t, dir, ReadOptions{TailLines: -1}, watchDir)
	waitOutput(t, f.out, lines("stdout", 0, 3))
	if err := os.Truncate(FilePath(dir, 0), 0); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, s, lines("stdout", 3, 4))
	waitOutput(t, f.out, lines("stdout", 0, 4))
}

func TestFollowPollsWithoutWatch(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, FilePath(dir, 0), WithMaxSize(60))
	s := w.Stream(Stdout)
	mustWrite(t, s, lines("stdout", 0, 1))
	noWatch := func(string) (*fsnotify.Watcher, error) { return nil, errors.New("no inotify") }
	f := follow(t, dir, ReadOptions{TailLines: -1}, noWatch)
	waitOutput(t, f.out, lines("stdout", 0, 1))
	waitForWatch(t, f)
	mustWrite(t, s, lines("stdout", 1, 4)) // and rotated
	// The follow output line 0 just before it began to wait for the clock,
	// the only thing that wakes it. The pause gives a follow that read on
	// without being woken the time to show it; a slow machine can only hide
	// that bug, not fail a correct follow.
	time.Sleep(50 * time.Millisecond)
	if got := f.out.String(); got != lines("stdout", 0, 1) {
		t.Fatalf("output before the poll = %q", got)
	}
	f.clock.Step(pollUnwatched)
	waitOutput(t, f.out, lines("stdout", 0, 4))
}

func TestFollowEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, FilePath(dir, 0), cri(t0, "stdout", "F", "x"))
	f := follow(t, dir, ReadOptions{TailLines: -1}, watchDir)
	waitOutput(t, f.out, "x\n")
	waitForWatch(t, f)
	f.cancel()
	select {
	case err := <-f.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ReadContainer = %v, want context.Canceled", err)
		}
		f.done <- err // for the cleanup
	case <-time.After(waitLimit):
		t.Fatalf("follow still running %s after its context ended", waitLimit)
	}
}

func TestFollowLimitBytesEnds(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, FilePath(dir, 0))
	s := w.Stream(Stdout)
	mustWrite(t, s, "abc\n")
	f := follow(t, dir, ReadOptions{TailLines: -1, LimitBytes: 6}, watchDir)
	waitOutput(t, f.out, "abc\n")
	mustWrite(t, s, "defgh\n")
	select {
	case err := <-f.done:
		if err != nil {
			t.Errorf("ReadContainer = %v, want nil at the limit", err)
		}
		f.done <- err
	case <-time.After(waitLimit):
		t.Fatal("follow did not end at its byte limit")
	}
	if got := f.out.String(); got != "abc\nde" {
		t.Errorf("output = %q, want %q", got, "abc\nde")
	}
}

func TestFollowerNext(t *testing.T) {
	file := func(restart int, key string, ino uint64) logFile {
		lf := logFile{logName: logName{restart: restart}, id: fileID{ino: ino}}
		lf.path = fmt.Sprintf("%d.log", restart)
		if key != "" {
			k, ok := parseRotated("x", "x."+key)
			if !ok {
				t.Fatalf("bad key %q", key)
			}
			lf.rotated, lf.key, lf.path = true, k, lf.path+"."+key
		}
		return lf
	}
	const r1, r2, r3 = "20240101-000001", "20240101-000002", "20240101-000003"
	tests := []struct {
		name  string
		cur   logFile // the file being read, as it was opened
		after string
		files []logFile
		want  string // path of the next file; "" for none
	}{
		{"live file still live", file(0, "", 7), r1, []logFile{file(0, r1, 1), file(0, "", 7)}, ""},
		{"rotated, new live file", file(0, "", 7), r1, []logFile{file(0, r1, 1), file(0, r2, 7), file(0, "", 8)}, "0.log"},
		{"rotated, new live file not created yet", file(0, "", 7), r1, []logFile{file(0, r1, 1), file(0, r2, 7)}, ""},
		{"rotated twice since", file(0, "", 7), r1, []logFile{file(0, r1, 1), file(0, r2, 7), file(0, r3, 8), file(0, "", 9)}, "0.log." + r3},
		{"rotated and deleted: the oldest newer rotation", file(0, "", 7), r1, []logFile{file(0, r2, 8), file(0, r3, 9), file(0, "", 10)}, "0.log." + r2},
		{"a rotated file being read", file(0, r1, 1), r1, []logFile{file(0, r1, 1), file(0, r2, 7), file(0, "", 8)}, "0.log." + r2},
		{"next instance", file(0, "", 7), "", []logFile{file(0, "", 7), file(1, r3, 8), file(1, "", 9)}, "1.log." + r3},
		{"next instance after the last rotation", file(0, "", 7), "", []logFile{file(0, r1, 7), file(0, "", 8), file(1, "", 9)}, "0.log"},
		{"directory emptied", file(0, "", 7), r1, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &follower{cur: &cursor{seg: &segment{logFile: tt.cur}}}
			if tt.after != "" {
				f.after, _ = parseRotated("x", "x."+tt.after)
			}
			got, ok := f.next(tt.files)
			if !ok {
				got.path = ""
			}
			if got.path != tt.want {
				t.Errorf("next = %q, want %q", got.path, tt.want)
			}
		})
	}
}
