package stats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// StatfsFunc fills st with the statistics of the filesystem holding path:
// unix.Statfs, or a fake in tests.
type StatfsFunc func(path string, st *unix.Statfs_t) error

// fsInfo is a filesystem's size and free space, in bytes and inodes.
type fsInfo struct {
	capacity, available, used uint64
	inodes, inodesFree        uint64
}

// statfs reads the filesystem holding path. Used is what is not free,
// available what an unprivileged writer may still take, as cAdvisor reports
// them.
func statfs(f StatfsFunc, path string) (fsInfo, error) {
	var st unix.Statfs_t
	if err := f(path, &st); err != nil {
		return fsInfo{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bsize := uint64(st.Bsize)
	return fsInfo{
		capacity: st.Blocks * bsize, available: st.Bavail * bsize, used: (st.Blocks - st.Bfree) * bsize,
		inodes: st.Files, inodesFree: st.Ffree,
	}, nil
}

// dirUsage is the disk a directory tree takes, as `du -x` counts it: the
// blocks of every file and directory, each hard-linked file once, not
// crossing into other filesystems; and the number of inodes. A missing
// directory uses nothing.
func dirUsage(root string) (bytes, inodes uint64, err error) {
	rootInfo, err := os.Lstat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("disk usage of %s: %w", root, err)
	}
	dev := devOf(rootInfo)
	type inode struct{ dev, ino uint64 }
	var linked map[inode]bool
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// Gone meanwhile, or unreadable: count what can be read.
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			bytes += uint64(info.Size())
			inodes++
			return nil
		}
		if uint64(st.Dev) != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && st.Nlink > 1 {
			if linked == nil {
				linked = map[inode]bool{}
			}
			k := inode{uint64(st.Dev), st.Ino}
			if linked[k] {
				return nil
			}
			linked[k] = true
		}
		bytes += uint64(st.Blocks) * 512
		inodes++
		return nil
	})
	return bytes, inodes, err
}

func devOf(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}
