// Package logs writes containers' output to log files in the CRI log format,
// rotates them by size, and reads them back for `podsup logs` and the
// /containerLogs endpoint.
//
// A container's files live in ContainerDir: one file per container instance,
// named after its restart count (0.log, 1.log, ...), and that file's
// rotations, named as the kubelet names them (0.log.20240102-150405).
package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// rotatedTimeLayout is the UTC time in a rotated file's name, as the kubelet
// writes it.
const rotatedTimeLayout = "20060102-150405"

// ContainerDir is the directory of one container's logs:
// <logDir>/<namespace>_<podName>_<podUID>/<containerName>.
func ContainerDir(logDir, namespace, podName, podUID, container string) string {
	return filepath.Join(logDir, namespace+"_"+podName+"_"+podUID, container)
}

// FilePath is the log file of one instance of a container: <restartCount>.log
// in its ContainerDir.
func FilePath(containerDir string, restartCount int) string {
	return filepath.Join(containerDir, strconv.Itoa(restartCount)+".log")
}

// rotKey orders the rotations of one file: the time in the name, then the
// numeric suffix added when two rotations fall in the same second.
type rotKey struct {
	ts  string // rotatedTimeLayout; fixed width, so it sorts as text
	seq int
}

func (k rotKey) less(o rotKey) bool {
	if k.ts != o.ts {
		return k.ts < o.ts
	}
	return k.seq < o.seq
}

// name is the rotated file name of base with this key.
func (k rotKey) name(base string) string {
	if k.seq == 0 {
		return base + "." + k.ts
	}
	return base + "." + k.ts + "." + strconv.Itoa(k.seq)
}

// parseRotated reports whether name is a rotation of base, and its key.
func parseRotated(base, name string) (rotKey, bool) {
	rest, ok := strings.CutPrefix(name, base+".")
	if !ok || len(rest) < len(rotatedTimeLayout) {
		return rotKey{}, false
	}
	k := rotKey{ts: rest[:len(rotatedTimeLayout)]}
	if !isRotatedTime(k.ts) {
		return rotKey{}, false
	}
	if suffix := rest[len(rotatedTimeLayout):]; suffix != "" {
		n, ok := parseCount(strings.TrimPrefix(suffix, "."))
		if !ok || suffix[0] != '.' || n == 0 {
			return rotKey{}, false
		}
		k.seq = n
	}
	return k, true
}

func isRotatedTime(s string) bool {
	for i := 0; i < len(s); i++ {
		if i == 8 {
			if s[i] != '-' {
				return false
			}
		} else if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseCount parses a restart count or sequence number: decimal digits only,
// no sign.
func parseCount(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// logName is what a file name in a container directory says about the file.
type logName struct {
	restart int
	rotated bool
	key     rotKey // when rotated
}

// parseLogName parses <n>.log and its rotations; other names are not logs.
func parseLogName(name string) (logName, bool) {
	num, rest, ok := strings.Cut(name, ".log")
	if !ok {
		return logName{}, false
	}
	n, ok := parseCount(num)
	if !ok {
		return logName{}, false
	}
	if rest == "" {
		return logName{restart: n}, true
	}
	k, ok := parseRotated(num+".log", name)
	if !ok {
		return logName{}, false
	}
	return logName{restart: n, rotated: true, key: k}, true
}

// fileID identifies a file whatever its name, so a reader can tell a log
// file that was rotated away from the new file that took its name.
type fileID struct{ dev, ino uint64 }

func idOf(info fs.FileInfo) fileID {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}
}

// logFile is one log file found in a container directory.
type logFile struct {
	logName
	path string
	id   fileID
}

// after reports whether f comes after o when a container's files are read
// in order: by restart count, and within one instance its rotations, oldest
// first, before the live file.
func (f logFile) after(o logFile) bool {
	switch {
	case f.restart != o.restart:
		return f.restart > o.restart
	case f.rotated != o.rotated:
		return !f.rotated
	}
	return o.key.less(f.key)
}

// listAttempts bounds how often a listing that rotations keep changing is
// tried again.
const listAttempts = 10

// errBusy means rotations kept changing a directory while it was listed.
var errBusy = errors.New("log directory kept changing while it was listed")

// listLogFiles returns the log files in dir in reading order, as they were
// at one moment: the names are listed again after the files are looked at,
// and if a rotation changed them meanwhile, it starts over. Otherwise the
// live file could be seen after a rotation that the names predate, and a
// follow would miss the file rotated in between.
func listLogFiles(dir string) ([]logFile, error) {
	names, err := logNames(dir)
	for attempt := 1; err == nil; attempt++ {
		files := statLogFiles(dir, names)
		again, err := logNames(dir)
		if err != nil {
			return nil, err
		}
		if slices.Equal(names, again) {
			slices.SortFunc(files, func(a, b logFile) int {
				switch {
				case a.after(b):
					return 1
				case b.after(a):
					return -1
				}
				return 0
			})
			return files, nil
		}
		if attempt == listAttempts {
			return nil, fmt.Errorf("%s: %w", dir, errBusy)
		}
		names = again
	}
	return nil, err
}

// logNames returns the names of the log files in dir, sorted.
func logNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if _, ok := parseLogName(e.Name()); ok {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// statLogFiles looks at the named files; those that vanished are left out.
func statLogFiles(dir string, names []string) []logFile {
	files := make([]logFile, 0, len(names))
	for _, name := range names {
		ln, _ := parseLogName(name)
		path := filepath.Join(dir, name)
		info, err := os.Stat(path)
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		files = append(files, logFile{logName: ln, path: path, id: idOf(info)})
	}
	return files
}

// Prune deletes the log files, rotated ones included, of the container
// instances in containerDir whose restart count is below keepFrom. podsup
// keeps the current and the previous instance. A missing directory is not an
// error.
func Prune(containerDir string, keepFrom int) error {
	entries, err := os.ReadDir(containerDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune logs: %w", err)
	}
	var errs []error
	for _, e := range entries {
		ln, ok := parseLogName(e.Name())
		if !ok || ln.restart >= keepFrom {
			continue
		}
		if err := os.Remove(filepath.Join(containerDir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune logs: %w", err)
	}
	return nil
}
