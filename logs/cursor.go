package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxRecord bounds one line of a log file as read: a longer one (garbage
// without newlines) is passed on in pieces of this size.
const maxRecord = 1 << 20

// cursor reads the records of one log file in order. It consumes only whole
// records: an unterminated one at the end is read again once it is whole,
// so a reader never splits a record a writer is still writing, and a writer
// that takes back a piece of a record (a full disk) never confuses it.
type cursor struct {
	seg  *segment
	file int   // index of seg in reading order
	off  int64 // end of the last whole record read
	src  offReader
	br   *bufio.Reader
	long []byte // a record longer than the buffer, being gathered
}

func newCursor(ctx context.Context, s *segment, file int, off, limit int64) *cursor {
	c := &cursor{seg: s, file: file, off: off, src: offReader{ctx: ctx, f: s.f, off: off, limit: limit}}
	c.br = bufio.NewReaderSize(&c.src, 64<<10)
	return c
}

// each calls fn for every whole record from the cursor on, and for an
// unterminated last one if the file is final (nothing will be added to it).
func (c *cursor) each(fn func(line []byte, at pos) error, final bool) error {
	for {
		line, err := c.br.ReadSlice('\n')
		switch {
		case err == nil:
			if err := c.emit(fn, line[:len(line)-1], 1); err != nil {
				return err
			}
		case errors.Is(err, bufio.ErrBufferFull):
			c.long = append(c.long, line...)
			if len(c.long) >= maxRecord {
				if err := c.emit(fn, nil, 0); err != nil {
					return err
				}
			}
		case errors.Is(err, io.EOF):
			if len(line)+len(c.long) == 0 {
				return nil
			}
			if final {
				return c.emit(fn, line, 0)
			}
			c.seek(c.off)
			return nil
		default:
			return fmt.Errorf("read %s: %w", c.seg.path, err)
		}
	}
}

// emit passes on a record: the gathered long part and line, followed by nl
// newline bytes in the file.
func (c *cursor) emit(fn func([]byte, pos) error, line []byte, nl int) error {
	rec := line
	if len(c.long) > 0 {
		c.long = append(c.long, line...)
		rec = c.long
	}
	at := pos{c.file, c.off}
	c.off += int64(len(rec) + nl)
	c.long = c.long[:0]
	return fn(rec, at)
}

// seek moves the cursor to off, dropping what it buffered.
func (c *cursor) seek(off int64) {
	c.off, c.src.off, c.long = off, off, c.long[:0]
	c.br.Reset(&c.src)
}

// checkTruncated starts the file over if someone truncated it below what
// was read.
func (c *cursor) checkTruncated() {
	if info, err := c.seg.f.Stat(); err == nil && info.Size() < c.off {
		c.seek(0)
	}
}

// offReader reads a file from an offset of its own, up to limit (-1: none),
// and stops when ctx ends.
type offReader struct {
	ctx   context.Context
	f     *os.File
	off   int64
	limit int64
}

func (r *offReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if r.limit >= 0 {
		if r.off >= r.limit {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), r.limit-r.off)]
	}
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}
