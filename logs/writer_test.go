package logs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestWriterRotation(t *testing.T) {
	rec := cri(t0, "stdout", "F", "0123456789") // every record has this length
	size := int64(len(rec))
	second := t0.Add(time.Second).Format(rotatedTimeLayout)
	tests := []struct {
		name     string
		maxSize  int64
		maxFiles int
		lines    int
		oneWrite bool // all lines in one Write (and so one second)
		step     time.Duration
		want     map[string]int // file name -> records in it
	}{
		{
			name: "rotated after the record that goes past the maximum", maxSize: 3*size - 1, maxFiles: 5, lines: 3, step: time.Second,
			want: map[string]int{"0.log." + t0.Add(3*time.Second).Format(rotatedTimeLayout): 3, "0.log": 0},
		},
		{
			name: "exactly the maximum is not past it", maxSize: 3 * size, maxFiles: 5, lines: 3, step: time.Second,
			want: map[string]int{"0.log": 3},
		},
		{
			name: "oldest rotations deleted beyond max files", maxSize: 2 * size, maxFiles: 3, lines: 9, step: time.Second,
			want: map[string]int{
				"0.log." + t0.Add(6*time.Second).Format(rotatedTimeLayout): 3,
				"0.log." + t0.Add(9*time.Second).Format(rotatedTimeLayout): 3,
				"0.log": 0,
			},
		},
		{
			name: "one write is split at record boundaries; rotations in one second get suffixes", maxSize: 2 * size, maxFiles: 10, lines: 7, oneWrite: true,
			want: map[string]int{"0.log." + second: 3, "0.log." + second + ".1": 3, "0.log": 1},
		},
		{
			name: "max files 1 keeps only the live file", maxSize: 2 * size, maxFiles: 1, lines: 4, step: time.Second,
			want: map[string]int{"0.log": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, clk := newTestWriter(t, filepath.Join(dir, "0.log"), WithMaxSize(tt.maxSize), WithMaxFiles(tt.maxFiles))
			s := w.Stream(Stdout)
			if tt.oneWrite {
				clk.Step(time.Second)
				mustWrite(t, s, strings.Repeat("0123456789\n", tt.lines))
			}
			for i := 0; i < tt.lines && !tt.oneWrite; i++ {
				clk.Step(tt.step)
				mustWrite(t, s, "0123456789\n")
			}
			got := map[string]int{}
			for _, name := range dirNames(t, dir) {
				content := readFile(t, filepath.Join(dir, name))
				got[name] = strings.Count(content, "\n")
				if int64(len(content)) != int64(got[name])*size {
					t.Errorf("%s holds a piece of a record: %q", name, content)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("files = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNextRotation(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		keys []rotKey
		want rotKey
	}{
		{"first", nil, rotKey{ts: "20240102-030405"}},
		{"later second", []rotKey{{ts: "20240102-030404", seq: 3}}, rotKey{ts: "20240102-030405"}},
		{"same second", []rotKey{{ts: "20240102-030405"}}, rotKey{ts: "20240102-030405", seq: 1}},
		{"same second again", []rotKey{{ts: "20240102-030405"}, {ts: "20240102-030405", seq: 1}}, rotKey{ts: "20240102-030405", seq: 2}},
		{"clock went back", []rotKey{{ts: "20240102-040000"}}, rotKey{ts: "20240102-040000", seq: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextRotation(tt.keys, now.In(time.FixedZone("x", 3600))); got != tt.want {
				t.Errorf("nextRotation = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// checkRecords reads a container's files in order and checks that each line
// is a whole F record, and that each stream's messages are "<stream>-<i>"
// for i counting up from 0 (with gaps if allowGaps). It returns how many
// lines each stream had.
func checkRecords(t *testing.T, dir string, allowGaps bool) map[string]int {
	t.Helper()
	files, err := listLogFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	for _, lf := range files {
		f, err := os.Open(lf.path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			r, ok := parseRecord(sc.Bytes())
			if !ok || r.partial {
				t.Fatalf("%s: not a whole F record: %q", lf.path, sc.Text())
			}
			var i int
			if _, err := fmt.Sscanf(string(r.msg), string(r.stream)+"-%d", &i); err != nil {
				t.Fatalf("%s: message %q: %v", lf.path, r.msg, err)
			}
			if i < next[string(r.stream)] || (!allowGaps && i != next[string(r.stream)]) {
				t.Fatalf("%s: %s line %d after %d", lf.path, r.stream, i, next[string(r.stream)]-1)
			}
			next[string(r.stream)] = i + 1
		}
		f.Close()
	}
	return next
}

// copyLines writes "<stream>-<i>\n" for i < n to s in writes of random
// sizes that split lines, as reads from a pipe do.
func copyLines(s interface{ Write([]byte) (int, error) }, stream string, n int, seed int64) {
	rnd := rand.New(rand.NewSource(seed))
	var data []byte
	for i := 0; i < n; i++ {
		data = fmt.Appendf(data, "%s-%d\n", stream, i)
	}
	for len(data) > 0 {
		k := min(1+rnd.Intn(200), len(data))
		s.Write(data[:k])
		data = data[k:]
	}
}

// bothStreams runs write on a stdout and a stderr stream of w at once; the
// function it returns waits for both.
func bothStreams(w *Writer, write func(s io.WriteCloser, name string, seed int64)) (wait func()) {
	var wg sync.WaitGroup
	for i, name := range []string{Stdout, Stderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			write(w.Stream(name), name, int64(i))
		}()
	}
	return wg.Wait
}

func TestWriterConcurrentStreams(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, filepath.Join(dir, "0.log"), WithMaxSize(64<<10), WithMaxFiles(1000))
	const n = 20000
	bothStreams(w, func(s io.WriteCloser, name string, seed int64) {
		copyLines(s, name, n, seed)
		s.Close()
	})()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := checkRecords(t, dir, false)
	if got[Stdout] != n || got[Stderr] != n {
		t.Errorf("lines = %v, want %d of each", got, n)
	}
	if st := w.Stats(); st.Rotations == 0 || st.DroppedLines != 0 {
		t.Errorf("stats = %+v, want rotations and nothing dropped", st)
	}
}

func TestWriterCloseWhileWriting(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, filepath.Join(dir, "0.log"), WithMaxSize(16<<10), WithMaxFiles(1000))
	wait := bothStreams(w, func(s io.WriteCloser, name string, _ int64) {
		for i := 0; i < 20000; i++ {
			fmt.Fprintf(s, "%s-%d\n", name, i) // whole lines: Close finds nothing unterminated
		}
	})
	time.Sleep(time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wait() // writes after Close return at once
	checkRecords(t, dir, false)
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestWriterFinishesPieceOfRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeLog(t, path, cri(t0, "stdout", "F", "before"), "2016-10-06T00:17:09.669794202Z stdout F cut sh")
	w, _ := newTestWriter(t, path)
	mustWrite(t, w.Stream(Stdout), "after\n")
	want := cri(t0, "stdout", "F", "before") + "2016-10-06T00:17:09.669794202Z stdout F cut sh\n" + cri(t0, "stdout", "F", "after")
	if got := readFile(t, path); got != want {
		t.Errorf("log file = %q, want %q", got, want)
	}
}

// logRecorder keeps the messages of the records logged.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}

func (h *logRecorder) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// TestWriterDiskFull writes to /dev/full, where every write fails with
// ENOSPC: the streams go on at once, and the loss is counted and reported
// once a minute.
func TestWriterDiskFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	logged := &logRecorder{}
	w, clk := newTestWriter(t, path, WithLogger(slog.New(logged)))
	s := w.Stream(Stdout)
	for i := 0; i < 1000; i++ {
		mustWrite(t, s, "line\n")
	}
	clk.Step(reportEvery)
	mustWrite(t, s, "line\n")
	mustWrite(t, s, "line\n")
	if st := w.Stats(); st.DroppedLines != 1002 || st.DroppedBytes != 1002*int64(len(cri(t0, "stdout", "F", "line"))) {
		t.Errorf("stats = %+v, want 1002 lines dropped", st)
	}
	w.Close()
	want := []string{
		"cannot write container log; dropping output until it can",
		"still cannot write container log",
		"container log output was dropped", // on Close: the last line
	}
	if got := logged.messages(); !slices.Equal(got, want) {
		t.Errorf("logged %q, want %q", got, want)
	}
}

// TestWriterFillsFilesystem fills a real filesystem: records that do not
// fit are dropped whole (a piece written before the disk filled is taken
// back), and writing resumes once there is room.
func TestWriterFillsFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 40<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(dir, "c")
	logged := &logRecorder{}
	w, _ := newTestWriter(t, filepath.Join(logDir, "0.log"), WithLogger(slog.New(logged)))
	s := w.Stream(Stdout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000; i++ {
			fmt.Fprintf(s, "stdout-%d %s\n", i, strings.Repeat("y", 300))
		}
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("writes blocked on a full disk")
	}
	if st := w.Stats(); st.DroppedLines == 0 {
		t.Fatalf("stats = %+v, want dropped lines", st)
	}
	checkRecords(t, logDir, true)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(s, "stdout-%d\n", 5000)
	got := checkRecords(t, logDir, true)
	if got[Stdout] != 5001 {
		t.Errorf("last line written was %d, want 5000", got[Stdout]-1)
	}
	if msgs := logged.messages(); len(msgs) != 2 || msgs[1] != "container log writable again" {
		t.Errorf("logged %q, want an error and a recovery", msgs)
	}
}
