package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/utils/clock"
)

var (
	// ErrNoLogs is returned when a container directory holds no log file.
	ErrNoLogs = errors.New("no logs")
	// ErrNoPrevious is returned when the previous instance of a container is
	// asked for and there is none.
	ErrNoPrevious = errors.New("no previous container instance")
)

// ReadOptions says what ReadContainer outputs, as the fields of the
// kubelet's PodLogOptions do.
type ReadOptions struct {
	// Follow keeps reading as the log grows, across rotations and into the
	// next instance of the container, until the context ends. It does not
	// apply to Previous, which has ended.
	Follow bool
	// TailLines outputs only the last lines of the instance, counted across
	// its rotated files; negative means all, and 0 means none.
	TailLines int64
	// Since outputs only lines stamped at or after it; zero means all. A
	// line that is not a CRI record goes with the record before it.
	Since time.Time
	// Timestamps prefixes each line with its time as written and a space;
	// a line that is not a CRI record has none.
	Timestamps bool
	// LimitBytes ends the output after this many bytes; 0 means no limit.
	LimitBytes int64
	// Previous reads the instance before the newest one.
	Previous bool
	// Clock drives the slow poll that backs file notifications when
	// following; nil means the real clock.
	Clock clock.Clock
}

// ReadContainer writes the log of a container to out: the messages of its
// newest instance, or of the one before with Previous, in file order with
// stdout and stderr interleaved, one line each. Lines split into P records
// are joined back; a line whose last record has not been written yet is
// left for a follow to output when it ends. Lines that are not CRI records
// are passed through as they are. A read that follows ends with the
// context's error.
func ReadContainer(ctx context.Context, containerDir string, opts ReadOptions, out io.Writer) error {
	return readContainer(ctx, containerDir, opts, out, watchDir)
}

// readContainer is ReadContainer with the directory watch replaceable, so
// tests can show that the poll alone keeps a follow going.
func readContainer(ctx context.Context, dir string, opts ReadOptions, out io.Writer, watch func(string) (*fsnotify.Watcher, error)) error {
	segs, err := openInstance(dir, opts.Previous)
	if err != nil {
		return err
	}
	defer func() { closeAll(segs) }()
	em := newEmitter(bufio.NewWriterSize(out, 32<<10), opts)
	follow := opts.Follow && !opts.Previous
	var after rotKey // every rotation of the instance so far is read
	for _, s := range segs {
		if s.rotated && after.less(s.key) {
			after = s.key
		}
	}
	cur, err := readInstance(ctx, segs, em, opts, follow)
	if err == nil && follow {
		f := &follower{dir: dir, clock: opts.Clock, em: em, cur: cur, after: after, watch: watch}
		if f.clock == nil {
			f.clock = clock.RealClock{}
		}
		err = f.run(ctx)
	}
	if errors.Is(err, errLimit) {
		err = nil
	}
	if ferr := em.flush(); err == nil {
		err = ferr
	}
	return err
}

// readInstance outputs the instance's files. To follow, it returns a cursor
// on the last one and hands it its file.
func readInstance(ctx context.Context, segs []*segment, em *emitter, opts ReadOptions, follow bool) (*cursor, error) {
	var start pos
	if opts.TailLines >= 0 {
		var err error
		if start, em.from, err = tailStart(segs, opts.TailLines, follow, opts.Previous); err != nil {
			return nil, fmt.Errorf("read logs: %w", err)
		}
	}
	last := len(segs) - 1
	var cur *cursor
	for i := start.file; i <= last; i++ {
		s, from, limit := segs[i], int64(0), segs[i].size
		if i == start.file {
			from = start.off
		}
		if follow && i == last {
			limit = -1
		}
		cur = newCursor(ctx, s, i, from, limit)
		if err := cur.each(em.record, s.rotated || opts.Previous); err != nil {
			return nil, err
		}
	}
	if follow {
		segs[last] = nil
		return cur, nil
	}
	// Lines whose end has not been written are still being written, unless
	// the instance has ended.
	if opts.Previous {
		return nil, em.endPartials()
	}
	return nil, nil
}

// openInstance opens the files of the container instance to read, oldest
// first.
func openInstance(dir string, previous bool) ([]*segment, error) {
	segs, _, err := openFiles(dir, func(files []logFile) ([]logFile, error) {
		return pickInstance(files, previous)
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", dir, ErrNoLogs)
	case errors.Is(err, ErrNoLogs), errors.Is(err, ErrNoPrevious):
		return nil, fmt.Errorf("%s: %w", dir, err)
	case err != nil:
		return nil, fmt.Errorf("read logs: %w", err)
	}
	return segs, nil
}

// pickInstance returns the files of the newest instance, or of the one
// before it.
func pickInstance(files []logFile, previous bool) ([]logFile, error) {
	if len(files) == 0 {
		return nil, ErrNoLogs
	}
	want := files[len(files)-1].restart
	if previous {
		i := len(files) - 1
		for i >= 0 && files[i].restart == want {
			i--
		}
		if i < 0 {
			return nil, ErrNoPrevious
		}
		want = files[i].restart
	}
	var picked []logFile
	for _, f := range files {
		if f.restart == want {
			picked = append(picked, f)
		}
	}
	return picked, nil
}
