package logs

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"
)

// maxRetainedBuf is the largest record buffer a stream keeps between writes;
// one huge write should not pin its memory for the container's life.
const maxRetainedBuf = 1 << 20

// stream turns one raw output stream into records. Every record of one
// Write is stamped with the time the Write came in; a line is stamped when
// its end arrives, as containerd does.
type stream struct {
	w    *Writer
	name string

	mu      sync.Mutex
	pending []byte    // the start of a line whose end has not come; at most MaxLineSize bytes
	at      time.Time // when pending last grew: the stamp it gets if the stream ends
	prefix  []byte    // time and stream of the records being built
	out     []byte    // records being built
	closed  bool
}

// Write turns p into records and appends them to the log. It fails only
// after Close; write errors are the Writer's to report, not the caller's.
func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("write %s log: %w", s.name, os.ErrClosed)
	}
	now := s.w.opts.clock.Now()
	s.prefix = appendPrefix(s.prefix[:0], now, s.name)
	s.feed(p)
	if len(s.pending) > 0 {
		s.at = now
	}
	s.emit()
	return len(p), nil
}

// feed splits p into lines, continuing the pending one. A line longer than
// MaxLineSize becomes P records of MaxLineSize bytes and a last F record; a
// P record is written only once more of the line has come, so a line of
// exactly MaxLineSize bytes stays one F record.
func (s *stream) feed(p []byte) {
	for len(p) > 0 {
		seg, rest, full := bytes.Cut(p, []byte{'\n'})
		p = rest
		for len(s.pending)+len(seg) > MaxLineSize {
			n := MaxLineSize - len(s.pending)
			s.pending = append(s.pending, seg[:n]...)
			s.out = appendRecord(s.out, s.prefix, tagPartial, s.pending)
			s.pending, seg = s.pending[:0], seg[n:]
		}
		if !full {
			s.pending = append(s.pending, seg...)
			return
		}
		msg := seg
		if len(s.pending) > 0 {
			s.pending = append(s.pending, seg...)
			msg = s.pending
		}
		s.out = appendRecord(s.out, s.prefix, tagFull, msg)
		s.pending = s.pending[:0]
	}
}

// emit hands the records built so far to the Writer.
func (s *stream) emit() {
	if len(s.out) == 0 {
		return
	}
	s.w.write(s.out)
	s.out = s.out[:0]
	if cap(s.out) > maxRetainedBuf {
		s.out = nil
	}
}

// flush writes an unterminated last line as an F record stamped with the
// time its last piece came.
func (s *stream) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return
	}
	s.prefix = appendPrefix(s.prefix[:0], s.at, s.name)
	s.out = appendRecord(s.out, s.prefix, tagFull, s.pending)
	s.pending = s.pending[:0]
	s.emit()
}

// Close writes out an unterminated last line. Later writes fail.
func (s *stream) Close() error {
	s.flush()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
