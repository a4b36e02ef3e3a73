package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// openAttempts bounds how often opening log files is tried again when
// rotations rename them meanwhile.
const openAttempts = 5

// errMoved means rotations kept renaming the files being opened.
var errMoved = errors.New("log files kept moving while they were opened")

// segment is one open log file.
type segment struct {
	logFile
	f    *os.File
	size int64 // when opened: what is read without Follow
}

// openFiles opens the files that pick chooses from a listing of dir. It
// checks them against a second listing made while they are open: an open
// file keeps its inode number, so if pick chooses the same names with the
// same numbers again, they are the files opened, and that listing, made at
// one moment, says where they stand among the others. Checking against the
// first listing instead is not enough: by the time a name is opened, its
// file may have been rotated and deleted, and a new file may have its
// number. It returns the second listing.
func openFiles(dir string, pick func([]logFile) ([]logFile, error)) ([]*segment, []logFile, error) {
	for attempt := 1; ; attempt++ {
		files, err := listLogFiles(dir)
		if err != nil {
			return nil, nil, err
		}
		want, err := pick(files)
		if err != nil || len(want) == 0 {
			return nil, files, err
		}
		segs, err := openAll(want)
		if err == nil {
			if files, err = listLogFiles(dir); err == nil {
				if again, err := pick(files); err == nil && sameFiles(segs, again) {
					return segs, files, nil
				}
			}
			closeAll(segs)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errBusy) {
			return nil, nil, err
		}
		if attempt == openAttempts {
			return nil, nil, fmt.Errorf("%s: %w", dir, errMoved)
		}
	}
}

// sameFiles reports whether the open segs are the files listed, and if so
// updates them from the listing.
func sameFiles(segs []*segment, files []logFile) bool {
	if len(segs) != len(files) {
		return false
	}
	for i, s := range segs {
		if s.path != files[i].path || s.id != files[i].id {
			return false
		}
	}
	for i, s := range segs {
		s.logFile = files[i]
	}
	return true
}

func openAll(files []logFile) ([]*segment, error) {
	segs := make([]*segment, 0, len(files))
	for _, lf := range files {
		f, err := os.Open(lf.path)
		var info os.FileInfo
		if err == nil {
			if info, err = f.Stat(); err != nil {
				f.Close()
			}
		}
		if err != nil {
			closeAll(segs)
			return nil, err
		}
		lf.id = idOf(info)
		segs = append(segs, &segment{logFile: lf, f: f, size: info.Size()})
	}
	return segs, nil
}

func closeAll(segs []*segment) {
	for _, s := range segs {
		if s != nil {
			s.f.Close()
		}
	}
}
