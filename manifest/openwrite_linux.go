package manifest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// openForWriting reports which of paths some process holds open for
// writing, by looking through /proc/*/fd once. inotify's close-write event
// would say the same more cheaply, but fsnotify does not expose it; this
// runs only when manifest files have just been quiet for a moment.
func openForWriting(paths []string) map[string]bool {
	byTarget := map[string][]string{} // resolved file -> paths as asked
	for _, path := range paths {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			continue
		}
		if target, err = filepath.Abs(target); err == nil {
			byTarget[target] = append(byTarget[target], path)
		}
	}
	writing := map[string]bool{}
	if len(byTarget) == 0 {
		return writing
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return writing
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
			if err != nil {
				continue
			}
			asked := byTarget[link]
			if len(asked) > 0 && !writing[asked[0]] && writeMode(filepath.Join("/proc", pid, "fdinfo", fd.Name())) {
				for _, path := range asked {
					writing[path] = true
				}
			}
		}
	}
	return writing
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
