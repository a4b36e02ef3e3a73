package stats

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// errNoValue is a stat file that holds no number where one was expected.
var errNoValue = errors.New("no value")

// readUint reads a file holding one unsigned number, such as cpuacct.usage.
func readUint(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := parseUint(bytes.TrimSpace(data))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readLimit reads a memory limit: cgroup v2's memory.max holds "max" when
// there is none. No limit is 0.
func readLimit(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	data = bytes.TrimSpace(data)
	if string(data) == "max" {
		return 0, nil
	}
	v, err := parseUint(data)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if unlimited(v) {
		return 0, nil
	}
	return v, nil
}

// unlimited reports whether a memory limit means none, as the kubelet
// decides it: not MaxInt64 exactly, because the kernel rounds it to a page.
func unlimited(v uint64) bool { return v > 1<<62 }

// parseUint parses decimal digits without allocating.
func parseUint(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errNoValue
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q: not a number", b)
		}
		d := uint64(c - '0')
		if v > (^uint64(0)-d)/10 {
			return 0, fmt.Errorf("%q: out of range", b)
		}
		v = v*10 + d
	}
	return v, nil
}

// eachKeyValue calls fn for each "key value" line of a flat keyed file
// (memory.stat, cpu.stat) whose value is a number; other lines are skipped.
func eachKeyValue(data []byte, fn func(key []byte, v uint64)) {
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		key, val, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		if v, err := parseUint(bytes.TrimSpace(val)); err == nil {
			fn(key, v)
		}
	}
}

// fields splits s at runs of spaces and tabs into at most len(dst) fields,
// reusing dst, and returns how many it found.
func fields(s []byte, dst [][]byte) int {
	n := 0
	for n < len(dst) {
		s = bytes.TrimLeft(s, " \t")
		if len(s) == 0 {
			break
		}
		end := bytes.IndexAny(s, " \t")
		if end < 0 {
			end = len(s)
		}
		dst[n], s = s[:end], s[end:]
		n++
	}
	return n
}

// atou parses a field that should be a number; a malformed one counts as 0
// so that one odd field does not hide the rest of a line.
func atou(b []byte) uint64 {
	v, _ := parseUint(b)
	return v
}
