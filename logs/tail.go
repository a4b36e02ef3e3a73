package logs

import (
	"bytes"
	"fmt"
)

// Reading backwards for TailLines.
const (
	tailChunk = 64 << 10
	// maxLineStart bounds how far before the first wanted line the start of
	// a line joined from P records is looked for; a line longer than
	// maxJoined is output in pieces anyway.
	maxLineStart = 4 * maxJoined
)

// tailStart finds where to read from so that the last n lines of segs are
// output whole. Lines are counted as the emitter outputs them: an F record
// ends one, and so does a line that is not a CRI record. A line whose F
// record has not been written is not output unless the instance has ended;
// then it counts as ending at its last P record (it is output last, so in
// that rare case, after a crash, the order is not quite the count's).
//
// from is the record ending the first line to output; start, at or before
// it, holds the first record of every line that ends at or after from, so
// that lines joined from P records that began earlier are output whole. A
// follow also waits for the end of lines that span from and have not
// ended, so both streams are looked at.
func tailStart(segs []*segment, n int64, follow, ended bool) (start, from pos, err error) {
	b := backScanner{segs: segs, file: len(segs), end: -1}
	seen := map[string]bool{} // streams with a record at or after from
	if n == 0 {
		// From after the last whole record, where a follow goes on.
		if more, err := b.ensure(); err != nil || !more {
			return pos{}, pos{}, err
		}
		from = pos{b.file, b.end + 1}
		if !follow {
			return from, from, nil
		}
	}
	for count := int64(0); count < n; {
		line, at, ok, err := b.prev()
		if err != nil || !ok {
			return pos{}, pos{}, err
		}
		from = at
		r, cri := parseRecord(line)
		if !cri || !r.partial || (ended && !seen[string(r.stream)]) {
			count++
		}
		if cri {
			seen[string(r.stream)] = true
		}
	}
	if follow {
		seen[Stdout], seen[Stderr] = true, true
	}
	// For each of those streams, its last record before from tells whether
	// one of its lines spans from: if it is a P record, go back to the first
	// record of that line.
	start = from
	for budget := int64(maxLineStart); len(seen) > 0 && budget > 0; {
		line, at, ok, err := b.prev()
		if err != nil || !ok {
			return start, from, err
		}
		budget -= int64(len(line)) + 1
		r, cri := parseRecord(line)
		switch {
		case !cri || !seen[string(r.stream)]:
		case r.partial:
			start = at
		default:
			delete(seen, string(r.stream))
		}
	}
	return start, from, nil
}

// backScanner returns the records of segs from the last to the first. An
// unterminated record at the end of a file counts only if the file is
// rotated (final); at the end of the live file it is still being written.
type backScanner struct {
	segs []*segment
	file int    // index of the file being scanned
	buf  []byte // bytes [lo, lo+len(buf)) of it
	lo   int64
	end  int64 // where the next record to return ends; -1 when the file is done or not started
}

// ensure moves to the file holding the next record to return, and reports
// false if there is none.
func (b *backScanner) ensure() (bool, error) {
	for b.end < 0 {
		if b.file <= 0 {
			b.file = -1
			return false, nil
		}
		b.file--
		if err := b.startFile(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// prev returns the record before the last one returned, and where it
// starts. The slice is valid until the next call.
func (b *backScanner) prev() (line []byte, at pos, ok bool, err error) {
	if ok, err := b.ensure(); !ok || err != nil {
		return nil, pos{}, false, err
	}
	nl, err := b.lastNewline(b.end)
	if err != nil {
		return nil, pos{}, false, err
	}
	start := nl + 1
	line = b.buf[start-b.lo : b.end-b.lo]
	b.buf = b.buf[:start-b.lo] // what is after start is not needed again
	b.end = nl                 // -1 when start is the beginning of the file
	return line, pos{b.file, start}, true, nil
}

// startFile sets up the scan of b.file from its end.
func (b *backScanner) startFile() error {
	s := b.segs[b.file]
	b.buf, b.lo, b.end = b.buf[:0], s.size, s.size
	if s.size == 0 {
		b.end = -1
		return nil
	}
	if err := b.load(s.size - 1); err != nil {
		return err
	}
	if b.buf[len(b.buf)-1] == '\n' {
		b.end = s.size - 1
		return nil
	}
	if s.rotated {
		return nil
	}
	// The live file ends in a record being written: skip it.
	nl, err := b.lastNewline(s.size)
	b.end = nl
	return err
}

// lastNewline returns the offset of the last newline before end, or -1.
func (b *backScanner) lastNewline(end int64) (int64, error) {
	for {
		if i := bytes.LastIndexByte(b.buf[:end-b.lo], '\n'); i >= 0 {
			return b.lo + int64(i), nil
		}
		if b.lo == 0 {
			return -1, nil
		}
		if err := b.load(max(b.lo-tailChunk, 0)); err != nil {
			return 0, err
		}
	}
}

// load extends the buffer back to from.
func (b *backScanner) load(from int64) error {
	s := b.segs[b.file]
	chunk := make([]byte, b.lo-from, int(b.lo-from)+len(b.buf))
	if _, err := s.f.ReadAt(chunk, from); err != nil {
		return fmt.Errorf("read %s: %w", s.path, err)
	}
	b.buf, b.lo = append(chunk, b.buf...), from
	return nil
}
