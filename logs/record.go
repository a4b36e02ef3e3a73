package logs

import (
	"bytes"
	"time"
)

// The CRI log format: one record a line,
//
//	2016-10-06T00:17:09.669794202Z stdout F message
//
// the time in RFC 3339 with nanoseconds, the stream, a tag (F for a full
// line or the last piece of one, P for a piece of a longer line; later flags
// may follow a colon) and the message.
const (
	// Stdout is the name of a container's standard output stream.
	Stdout = "stdout"
	// Stderr is the name of a container's standard error stream.
	Stderr = "stderr"

	tagFull    = 'F'
	tagPartial = 'P'

	// MaxLineSize is the longest message one record holds; a longer line is
	// split into P records, as containerd does by default.
	MaxLineSize = 16 << 10
)

// record is one parsed line of a log file. Its slices point into the line.
type record struct {
	ts      []byte // as written, so output repeats it exactly
	time    time.Time
	stream  []byte
	partial bool
	msg     []byte
}

// parseRecord parses one line of a log file, without its newline. It
// reports false for anything that is not a CRI record.
func parseRecord(line []byte) (record, bool) {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return record{}, false
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(stream) == 0 {
		return record{}, false
	}
	tag, msg, _ := bytes.Cut(rest, []byte{' '}) // "F" alone is an empty line
	flag, _, _ := bytes.Cut(tag, []byte{':'})
	if len(flag) != 1 || (flag[0] != tagFull && flag[0] != tagPartial) {
		return record{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return record{}, false
	}
	return record{ts: ts, time: t, stream: stream, partial: flag[0] == tagPartial, msg: msg}, true
}

// appendPrefix appends the start of a record up to its tag.
func appendPrefix(b []byte, t time.Time, stream string) []byte {
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	return append(b, ' ')
}

// appendRecord appends one record: a prefix from appendPrefix, the tag and
// the message.
func appendRecord(b, prefix []byte, tag byte, msg []byte) []byte {
	b = append(b, prefix...)
	b = append(b, tag, ' ')
	b = append(b, msg...)
	return append(b, '\n')
}
