package logs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/utils/clock"
)

// How often a follow looks at the directory without being told to: rarely
// while inotify reports its changes, often when it cannot.
const (
	pollWatched   = 10 * time.Second
	pollUnwatched = time.Second
)

// follower reads a container's log as it grows: the live file, then the file
// that replaces it when it is rotated, then the next instance's when the
// container restarts.
type follower struct {
	dir   string
	clock clock.Clock
	em    *emitter
	cur   *cursor
	// after is the newest rotation of cur's instance known to be older than
	// cur; every later one was rotated after cur was.
	after rotKey
	watch func(dir string) (*fsnotify.Watcher, error)
}

func watchDir(dir string) (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// run follows until ctx ends. It wakes on changes in the directory, and on
// a slow poll in case a change was missed.
func (f *follower) run(ctx context.Context) error {
	defer func() { f.cur.seg.f.Close() }()
	w, _ := f.watch(f.dir) // without it, the poll does
	timer := f.clock.NewTimer(pollInterval(w))
	defer timer.Stop()
	unwatch := func() {
		if w != nil {
			w.Close()
			w = nil
		}
	}
	defer unwatch()
	look := true // the directory may have changed since the files were opened
	for {
		f.cur.checkTruncated()
		if err := f.cur.each(f.em.record, f.cur.seg.rotated); err != nil {
			return err
		}
		if look {
			look = false
			moved, err := f.advance(ctx)
			if err != nil {
				return err
			}
			if moved {
				look = true
				continue
			}
		}
		if err := f.em.flush(); err != nil {
			return err
		}
		var events <-chan fsnotify.Event
		var errs <-chan error
		if w != nil {
			events, errs = w.Events, w.Errors
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			more, alive := drainEvents(events, ev, ok, f.dir)
			look = look || more
			if !alive {
				unwatch()
				timer.Stop()
				timer.Reset(pollUnwatched)
			}
		case _, ok := <-errs:
			look = true // events were lost
			if !ok {
				unwatch()
			}
		case <-timer.C():
			look = true
			if w == nil {
				w, _ = f.watch(f.dir)
			}
			timer.Reset(pollInterval(w))
		}
	}
}

// drainEvents takes ev and whatever else the watcher has queued, so that a
// burst of writes is read once. It reports whether one of them may have
// added or renamed a file, and false for alive when the watch is gone.
func drainEvents(events <-chan fsnotify.Event, ev fsnotify.Event, ok bool, dir string) (look, alive bool) {
	for {
		if !ok || filepath.Clean(ev.Name) == filepath.Clean(dir) {
			return true, false // the directory itself went
		}
		look = look || !ev.Has(fsnotify.Write)
		select {
		case ev, ok = <-events:
		default:
			return look, true
		}
	}
}

func pollInterval(w *fsnotify.Watcher) time.Duration {
	if w == nil {
		return pollUnwatched
	}
	return pollWatched
}

// advance moves to the next file once the current one is done: rotated
// away, or followed by a newer instance. It reports whether it moved.
func (f *follower) advance(ctx context.Context) (bool, error) {
	segs, files, err := openFiles(f.dir, func(files []logFile) ([]logFile, error) {
		if next, ok := f.next(files); ok {
			return []logFile{next}, nil
		}
		return nil, nil
	})
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errMoved), errors.Is(err, errBusy):
		return false, nil // gone or busy for now: wait
	case err != nil:
		return false, fmt.Errorf("follow logs: %w", err)
	case len(segs) == 0:
		return false, nil
	}
	s := segs[0]
	// All writes to the old file came before it was renamed or the new
	// instance started: read what is left of it.
	if err := f.cur.each(f.em.record, true); err != nil {
		s.f.Close()
		return false, err
	}
	if s.restart != f.cur.seg.restart {
		if err := f.em.endPartials(); err != nil {
			s.f.Close()
			return false, err
		}
	}
	f.cur.seg.f.Close()
	f.cur = newCursor(ctx, s, f.cur.file+1, 0, -1)
	f.after = s.key
	if !s.rotated {
		f.after = newestRotation(files, s.restart)
	}
	return true, nil
}

// next returns the file to read after the current one, or false while the
// current one may still grow or nothing follows it yet. While the current
// file is live, it brings after up to date.
func (f *follower) next(files []logFile) (logFile, bool) {
	cur := f.cur.seg
	if len(files) == 0 {
		return logFile{}, false
	}
	newer := files[len(files)-1].restart > cur.restart
	if !cur.rotated {
		for _, lf := range files {
			if lf.restart == cur.restart && !lf.rotated && lf.id == cur.id {
				// Still the live file: every rotation so far is older.
				f.after = newestRotation(files, cur.restart)
				if !newer {
					return logFile{}, false
				}
			}
		}
	}
	for _, lf := range files {
		switch {
		case lf.restart < cur.restart || lf.id == cur.id:
		case lf.restart > cur.restart || !lf.rotated || f.after.less(lf.key):
			return lf, true
		}
	}
	return logFile{}, false
}

// newestRotation returns the key of the newest rotated file of an instance.
func newestRotation(files []logFile, restart int) rotKey {
	var k rotKey
	for _, lf := range files {
		if lf.restart == restart && lf.rotated && k.less(lf.key) {
			k = lf.key
		}
	}
	return k
}
