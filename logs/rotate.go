package logs

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// rotate renames the file to its rotated name, opens a new one and deletes
// the oldest rotations beyond MaxFiles. A failure leaves the file as it is
// and is retried a little later.
func (w *Writer) rotate() {
	now := w.opts.clock.Now()
	if w.f == nil || now.Before(w.retryAt) {
		return
	}
	dir, base := filepath.Split(w.path)
	keys, err := rotations(dir, base)
	next := nextRotation(keys, now)
	if err == nil {
		err = os.Rename(w.path, filepath.Join(dir, next.name(base)))
	}
	if err != nil {
		w.retryAt = now.Add(retryEvery)
		w.log.Error("cannot rotate container log", "err", err)
		return
	}
	w.stats.Rotations++
	w.f.Close()
	w.f = nil
	if err := w.open(); err != nil {
		w.retryAt = now.Add(retryEvery)
		w.log.Error("cannot open container log after rotating it", "err", err)
	}
	keys = append(keys, next)
	for _, k := range keys[:max(len(keys)-(w.opts.maxFiles-1), 0)] {
		if err := os.Remove(filepath.Join(dir, k.name(base))); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.log.Warn("cannot delete old container log", "err", err)
		}
	}
}

// rotations returns the keys of base's rotated files in dir, oldest first.
func rotations(dir, base string) ([]rotKey, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var keys []rotKey
	for _, e := range entries {
		if k, ok := parseRotated(base, e.Name()); ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	return keys, nil
}

// nextRotation is the key of the next rotated file: the time now, with a
// suffix if a rotation already took that second. It never sorts before an
// existing rotation, even if the clock went back, so readers keep the order.
func nextRotation(keys []rotKey, now time.Time) rotKey {
	k := rotKey{ts: now.UTC().Format(rotatedTimeLayout)}
	if len(keys) == 0 {
		return k
	}
	if last := keys[len(keys)-1]; !last.less(k) {
		k = rotKey{ts: last.ts, seq: last.seq + 1}
	}
	return k
}
