package logs

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// lastWindow is how much of the end of a log file LastLines reads: far
// more than maxBytes of messages and their record prefixes take, so a
// failed container's termination message costs one small read however
// large its log.
const lastWindow = 64 << 10

// LastLines is the end of one log file's messages, as the kubelet makes a
// failed container's termination message from its log with
// FallbackToLogsOnError: the last maxLines lines (P records joined, stdout
// and stderr interleaved), each ending in a newline, then at most the last
// maxBytes of them. A missing file has none.
func LastLines(path string, maxLines, maxBytes int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "", nil
		}
		return "", fmt.Errorf("open log %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat log %s: %w", path, err)
	}
	start := max(info.Size()-lastWindow, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, start, info.Size()-start))
	if err != nil {
		return "", fmt.Errorf("read log %s: %w", path, err)
	}
	if start > 0 {
		// The window's first line is likely cut: drop it.
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	var lines [][]byte
	partial := map[string][]byte{} // by stream, a line whose last record is still to come
	for _, raw := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		if len(raw) == 0 {
			continue
		}
		r, ok := parseRecord(raw)
		if !ok {
			lines = append(lines, raw) // as ReadContainer passes it through
			continue
		}
		msg := append(partial[string(r.stream)], r.msg...)
		if r.partial {
			partial[string(r.stream)] = msg
			continue
		}
		delete(partial, string(r.stream))
		lines = append(lines, msg)
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	var out []byte
	for _, l := range lines {
		out = append(append(out, l...), '\n')
	}
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out), nil
}
