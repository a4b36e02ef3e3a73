package logs

import (
	"bufio"
	"errors"
	"fmt"
	"sort"
	"time"
)

// maxJoined bounds a line joined from P records. A longer one (a container
// printing without newlines) is output in pieces of this size, so a reader
// never holds more than this per stream. TailLines counts such a line once,
// and outputs its last piece.
const maxJoined = 1 << 20

// errLimit ends a read that reached ReadOptions.LimitBytes.
var errLimit = errors.New("byte limit reached")

// pos is a place in the files being read: the index of a file in reading
// order and a byte offset in it.
type pos struct {
	file int
	off  int64
}

func (p pos) before(q pos) bool {
	return p.file < q.file || (p.file == q.file && p.off < q.off)
}

// emitter turns records into output lines.
type emitter struct {
	w          *bufio.Writer
	since      time.Time
	timestamps bool
	limit      int64 // 0: none
	written    int64
	// from is where the lines to output begin: a line whose last record
	// comes before it is dropped (TailLines).
	from    pos
	last    time.Time // of the last CRI record: the time of a malformed line
	partial map[string]*partialLine
}

// partialLine is a line being joined from P records.
type partialLine struct {
	open bool
	ts   []byte
	time time.Time
	msg  []byte
	last pos // of its last record
}

func newEmitter(w *bufio.Writer, opts ReadOptions) *emitter {
	return &emitter{w: w, since: opts.Since, timestamps: opts.Timestamps, limit: max(opts.LimitBytes, 0), partial: map[string]*partialLine{}}
}

// record outputs one line of a log file found at at, or adds it to the line
// it continues.
func (e *emitter) record(line []byte, at pos) error {
	r, ok := parseRecord(line)
	if !ok {
		return e.line(nil, e.last, line, at)
	}
	e.last = r.time
	p := e.partial[string(r.stream)]
	if r.partial {
		if p == nil {
			p = &partialLine{}
			e.partial[string(r.stream)] = p
		}
		if !p.open {
			p.open, p.ts, p.time, p.msg = true, append(p.ts[:0], r.ts...), r.time, p.msg[:0]
		}
		p.msg, p.last = append(p.msg, r.msg...), at
		if len(p.msg) >= maxJoined {
			return e.end(p)
		}
		return nil
	}
	if p == nil || !p.open {
		return e.line(r.ts, r.time, r.msg, at)
	}
	p.msg, p.last = append(p.msg, r.msg...), at
	return e.end(p)
}

// end outputs a joined line.
func (e *emitter) end(p *partialLine) error {
	p.open = false
	err := e.line(p.ts, p.time, p.msg, p.last)
	if cap(p.msg) > MaxLineSize*4 {
		p.msg = nil
	}
	return err
}

// endPartials outputs the lines whose last record never came, once their
// instance has ended.
func (e *emitter) endPartials() error {
	var open []*partialLine
	for _, p := range e.partial {
		if p.open {
			open = append(open, p)
		}
	}
	sort.Slice(open, func(i, j int) bool { return open[i].last.before(open[j].last) })
	for _, p := range open {
		if err := e.end(p); err != nil {
			return err
		}
	}
	return nil
}

// line outputs one line unless it is before from or since. ts is nil for a
// line that is not a CRI record, which is output as it is.
func (e *emitter) line(ts []byte, t time.Time, msg []byte, at pos) error {
	if at.before(e.from) || (!e.since.IsZero() && t.Before(e.since)) {
		return nil
	}
	if e.timestamps && ts != nil {
		if err := e.write(ts); err != nil {
			return err
		}
		if err := e.write([]byte{' '}); err != nil {
			return err
		}
	}
	if err := e.write(msg); err != nil {
		return err
	}
	return e.write([]byte{'\n'})
}

// write outputs b, up to the byte limit.
func (e *emitter) write(b []byte) error {
	if e.limit > 0 && int64(len(b)) >= e.limit-e.written {
		b = b[:e.limit-e.written]
		e.w.Write(b) // a write error is kept by the bufio.Writer for Flush
		e.written = e.limit
		return errLimit
	}
	e.written += int64(len(b))
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("write logs: %w", err)
	}
	return nil
}

// flush sends what is buffered to the output.
func (e *emitter) flush() error {
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("write logs: %w", err)
	}
	return nil
}
