package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of a Writer, the kubelet's.
const (
	// DefaultMaxSize is the size past which a log file is rotated
	// (--container-log-max-size).
	DefaultMaxSize = 10 << 20
	// DefaultMaxFiles is how many files of one container instance are kept,
	// the live one included (--container-log-max-files).
	DefaultMaxFiles = 5

	// retryEvery bounds how often a failed rotation or reopen is retried, so
	// a broken disk costs a few syscalls a second, not a few a line.
	retryEvery = time.Second
	// reportEvery bounds how often dropped output is logged.
	reportEvery = time.Minute
)

// errNoFile is why output is dropped while the log file cannot be opened.
var errNoFile = errors.New("log file is not open")

// Option configures a Writer.
type Option func(*options) error

type options struct {
	maxSize  int64
	maxFiles int
	clock    clock.PassiveClock
	log      *slog.Logger
}

// WithMaxSize sets the size in bytes past which the log file is rotated.
func WithMaxSize(bytes int64) Option {
	return func(o *options) error {
		if bytes <= 0 {
			return fmt.Errorf("max size %d: must be positive", bytes)
		}
		o.maxSize = bytes
		return nil
	}
}

// WithMaxFiles sets how many files of the log are kept, the live one
// included. With 1, a rotation discards the old content.
func WithMaxFiles(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("max files %d: must be at least 1", n)
		}
		o.maxFiles = n
		return nil
	}
}

// WithClock sets the clock that timestamps records and names rotated files.
func WithClock(c clock.PassiveClock) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("nil clock")
		}
		o.clock = c
		return nil
	}
}

// WithLogger sets the logger that reports write errors and dropped output.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// Stats counts what a Writer did.
type Stats struct {
	Rotations    int64 // files rotated
	DroppedLines int64 // records lost to write errors or written after Close
	DroppedBytes int64
}

// Writer appends a container instance's output to its log file and rotates
// the file by size. Its streams may write concurrently; each record is
// written whole. A write error never reaches a stream's caller: the output is
// dropped, counted and reported, and the next write tries again, so the copy
// from the container never stalls.
type Writer struct {
	path string
	opts options
	log  *slog.Logger

	mu       sync.Mutex
	f        *os.File // nil while the file cannot be opened
	size     int64
	brokenNL bool      // the file ends in a piece of a record: start the next write with a newline
	retryAt  time.Time // no rotation or reopen before this
	closed   bool
	streams  []*stream
	stats    Stats
	// Writes fail: output dropped since it was last reported, and when.
	failing                          bool
	unreportedLines, unreportedBytes int64
	reportedAt                       time.Time
}

// NewWriter opens the log file at path for appending, creating it and its
// directories as needed.
func NewWriter(path string, opts ...Option) (*Writer, error) {
	o := options{}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("log writer for %s: %w", path, err)
		}
	}
	if o.maxSize == 0 {
		o.maxSize = DefaultMaxSize
	}
	if o.maxFiles == 0 {
		o.maxFiles = DefaultMaxFiles
	}
	if o.clock == nil {
		o.clock = clock.RealClock{}
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	w := &Writer{path: path, opts: o, log: o.log.With("log", path)}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

// open opens the file at w.path. A file left ending in a piece of a record
// (podsup died mid-write) gets a newline first, so the next record is whole.
func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log: %w", err)
	}
	w.f, w.size, w.brokenNL = f, info.Size(), false
	if w.size > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, w.size-1); err == nil && last[0] != '\n' {
			w.brokenNL = true
		}
	}
	return nil
}

// Stream returns a writer that turns the raw output of one stream, "stdout"
// or "stderr", into records, each stamped with the time the Write that ended
// it came in. Streams may write at once. Closing one writes out its
// unterminated last line; it does not close the Writer.
func (w *Writer) Stream(name string) io.WriteCloser {
	s := &stream{w: w, name: name}
	w.mu.Lock()
	w.streams = append(w.streams, s)
	w.mu.Unlock()
	return s
}

// Close writes out the streams' unterminated lines and closes the file.
// Output written after Close is dropped, so a copy still draining a
// container's pipes never blocks.
func (w *Writer) Close() error {
	w.mu.Lock()
	streams := w.streams
	w.mu.Unlock()
	for _, s := range streams {
		s.flush()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.unreportedLines > 0 {
		w.log.Warn("container log output was dropped", "droppedLines", w.unreportedLines, "droppedBytes", w.unreportedBytes)
	}
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	return nil
}

// Stats returns what the Writer has done so far.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// write appends whole records. After the record that takes the file past
// its maximum size, the file is rotated.
func (w *Writer) write(buf []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.stats.DroppedLines += int64(bytes.Count(buf, []byte{'\n'}))
		w.stats.DroppedBytes += int64(len(buf))
		return
	}
	for len(buf) > 0 {
		chunk, rotate := buf, false
		if room := w.opts.maxSize - w.size; int64(len(buf)) > room {
			i := max(room, 0) // the first byte past the limit; its record ends the file
			chunk, rotate = buf[:int(i)+bytes.IndexByte(buf[i:], '\n')+1], true
		}
		buf = buf[len(chunk):]
		w.writeFile(chunk)
		if rotate {
			w.rotate()
		}
	}
}

// writeFile writes records to the file, or drops them.
func (w *Writer) writeFile(chunk []byte) {
	now := w.opts.clock.Now()
	if w.f == nil && !now.Before(w.retryAt) {
		if err := w.open(); err != nil {
			w.retryAt = now.Add(retryEvery)
			w.drop(now, chunk, err)
			return
		}
	}
	if w.f == nil {
		w.drop(now, chunk, errNoFile)
		return
	}
	if w.brokenNL {
		if _, err := w.f.Write([]byte{'\n'}); err != nil {
			w.drop(now, chunk, err)
			return
		}
		w.size++
		w.brokenNL = false
	}
	n, err := w.f.Write(chunk)
	if err != nil {
		// Take back a piece of a record (the disk filled mid-write), so
		// readers never see it; if that fails too, end it with a newline
		// before the next record.
		if n > 0 {
			if terr := w.f.Truncate(w.size); terr != nil {
				w.size += int64(n)
				w.brokenNL = true
			}
		}
		w.drop(now, chunk, err)
		return
	}
	w.size += int64(n)
	if w.failing {
		w.failing = false
		w.log.Warn("container log writable again", "droppedLines", w.unreportedLines, "droppedBytes", w.unreportedBytes)
		w.unreportedLines, w.unreportedBytes = 0, 0
	}
}

// drop counts records lost to err and reports them, at most once every
// reportEvery.
func (w *Writer) drop(now time.Time, chunk []byte, err error) {
	lines := int64(bytes.Count(chunk, []byte{'\n'}))
	w.stats.DroppedLines += lines
	w.stats.DroppedBytes += int64(len(chunk))
	w.unreportedLines += lines
	w.unreportedBytes += int64(len(chunk))
	if !w.failing {
		w.failing = true
		w.log.Error("cannot write container log; dropping output until it can", "err", err)
		w.reportedAt = now
		return
	}
	if now.Sub(w.reportedAt) >= reportEvery {
		w.log.Error("still cannot write container log", "err", err, "droppedLines", w.unreportedLines, "droppedBytes", w.unreportedBytes)
		w.unreportedLines, w.unreportedBytes, w.reportedAt = 0, 0, now
	}
}
