package runtime

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/podsup/podsup/logs"
)

// orphanLogAge is how old a pod's log directory with no container in
// containerd must be before ReclaimLogs removes it: a pod being created
// has its directory a moment before its first container.
const orphanLogAge = time.Minute

// ReclaimLogs frees the node filesystem of logs no running container
// writes, as the kubelet's container garbage collection does under disk
// pressure: the log directories of pods that no longer have a container,
// and the files of every container instance before the newest (the
// previous instance's log, normally kept for `logs --previous`). It
// returns the bytes freed.
func (r *Runtime) ReclaimLogs(ctx context.Context) (uint64, error) {
	pods, err := r.ListPods(ctx)
	if err != nil {
		return 0, fmt.Errorf("reclaim logs: %w", err)
	}
	newest := map[string]int{} // container log directory: newest instance
	podDirs := map[string]bool{}
	for _, ps := range pods {
		for _, c := range ps.Containers {
			if c.LogPath == "" {
				continue
			}
			dir := filepath.Dir(c.LogPath)
			podDirs[filepath.Dir(dir)] = true
			if n, ok := newest[dir]; !ok || c.Attempt > n {
				newest[dir] = c.Attempt
			}
		}
	}
	var freed uint64
	var errs []error
	for dir, attempt := range newest {
		before := usage(dir)
		if err := logs.Prune(dir, attempt); err != nil {
			errs = append(errs, err)
		}
		freed += before - min(before, usage(dir))
	}
	entries, err := os.ReadDir(r.logDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	now := r.clock.Now()
	for _, e := range entries {
		dir := filepath.Join(r.logDir, e.Name())
		info, err := e.Info()
		if !e.IsDir() || podDirs[dir] || err != nil || now.Sub(info.ModTime()) < orphanLogAge {
			continue
		}
		freed += usage(dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return freed, fmt.Errorf("reclaim logs: %w", errors.Join(errs...))
	}
	r.log.Info("reclaimed logs", "bytes", freed)
	return freed, nil
}

// usage is the bytes the files under dir take on disk.
func usage(dir string) uint64 {
	var total uint64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += uint64(info.Size())
			}
		}
		return nil
	})
	return total
}
