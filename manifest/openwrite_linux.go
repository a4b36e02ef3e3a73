package manifest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// openForWriting reports whether any process holds path open for writing,
// by looking through /proc/*/fd. inotify's close-write event would say the
// same more cheaply, but fsnotify does not expose it; this runs only when a
// manifest file has just been quiet for a moment, so its cost is small.
func openForWriting(path string) bool {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	if target, err = filepath.Abs(target); err != nil {
		return false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, p := range procs {
		pid := p.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		fdDir := filepath.Join("/proc", pid, "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || link != target {
				continue
			}
			if writeMode(filepath.Join("/proc", pid, "fdinfo", fd.Name())) {
				return true
			}
		}
	}
	return false
}

// writeMode reads an fdinfo file's flags and reports whether the descriptor
// was opened for writing.
func writeMode(fdinfo string) bool {
	data, err := os.ReadFile(fdinfo)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&uint64(os.O_WRONLY|os.O_RDWR) != 0
		}
	}
	return false
}
