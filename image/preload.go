package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/fsnotify/fsnotify"
	"k8s.io/utils/clock"
)

// archiveSuffixes are the file names the preloader imports.
var archiveSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"}

// Preloader imports the image archives of a directory at start-up and
// whenever one appears or changes, so that a USB stick or a drop by
// configuration management provisions a box that has no registry.
type Preloader struct {
	dir         string
	client      *containerd.Client
	snapshotter string
	// settle is how long a file must be quiet before it is read, so a
	// file being copied is read once it is whole.
	settle time.Duration
	// rescan is how often the directory is listed in full, for what inotify
	// cannot see (a filesystem mounted over the directory).
	rescan time.Duration
	clock  clock.WithTicker
	log    *slog.Logger

	seen map[string]string // by path: the fingerprint last imported or tried
}

// NewPreloader returns a preloader of dir into the context's namespace.
func NewPreloader(dir string, client *containerd.Client, snapshotter string, log *slog.Logger, clk clock.WithTicker) *Preloader {
	return &Preloader{dir: dir, client: client, snapshotter: snapshotter, settle: time.Second, rescan: 10 * time.Second,
		clock: clk, log: log, seen: map[string]string{}}
}

// Run imports what is new in the directory, then watches it until ctx ends.
// An archive whose images are still present from an earlier import is not
// read again; one that fails is tried again when it changes.
func (p *Preloader) Run(ctx context.Context) error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return fmt.Errorf("image preload directory: %w", err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", p.dir, err)
	}
	defer w.Close()
	if err := w.Add(p.dir); err != nil {
		return fmt.Errorf("watch %s: %w", p.dir, err)
	}
	if present, err := p.presentArchives(ctx); err == nil {
		for _, path := range p.archives() {
			if fp, err := archiveFingerprint(path); err == nil && present[fp] {
				p.seen[path] = fp
			}
		}
	} else {
		p.log.Warn("cannot list images; every archive is imported again", "err", err)
	}
	p.scan(ctx)
	tick := p.clock.NewTicker(p.settle / 4)
	defer tick.Stop()
	pending := map[string]settling{}
	lastScan := p.clock.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if ok && isArchive(ev.Name) {
				fp, _ := archiveFingerprint(ev.Name)
				pending[ev.Name] = settling{since: p.clock.Now(), fp: fp}
			}
		case err, ok := <-w.Errors:
			if ok {
				p.log.Warn("watching the image preload directory", "dir", p.dir, "err", err)
			}
		case <-tick.C():
			now := p.clock.Now()
			for path, q := range pending {
				fp, err := archiveFingerprint(path)
				switch {
				case err != nil:
					delete(pending, path) // gone
				case fp != q.fp:
					// Written to without an event (a filesystem
					// mounted over the directory): quiet from now.
					pending[path] = settling{since: now, fp: fp}
				case now.Sub(q.since) >= p.settle:
					delete(pending, path)
					p.importIfNew(ctx, path)
				}
			}
			if now.Sub(lastScan) >= p.rescan {
				lastScan = now
				// What the rescan finds waits to be quiet too: it may
				// be a copy in progress that no event announced.
				for _, path := range p.archives() {
					if _, waiting := pending[path]; waiting {
						continue
					}
					if fp, err := archiveFingerprint(path); err == nil && p.seen[path] != fp {
						pending[path] = settling{since: now, fp: fp}
					}
				}
			}
		}
	}
}

// settling is an archive waiting to be quiet for the settle time: when it was
// last seen to change, and its fingerprint then.
type settling struct {
	since time.Time
	fp    string
}

// scan imports every archive of the directory that is new or changed.
func (p *Preloader) scan(ctx context.Context) {
	for _, path := range p.archives() {
		p.importIfNew(ctx, path)
	}
}

// archives lists the archive files of the directory, sorted.
func (p *Preloader) archives() []string {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		p.log.Warn("cannot list the image preload directory", "dir", p.dir, "err", err)
		return nil
	}
	var out []string
	for _, e := range entries {
		if path := filepath.Join(p.dir, e.Name()); isArchive(path) {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}

func isArchive(path string) bool {
	name := filepath.Base(path)
	if strings.HasPrefix(name, ".") {
		return false
	}
	for _, s := range archiveSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// importIfNew imports an archive unless this version of it was imported
// or tried already.
func (p *Preloader) importIfNew(ctx context.Context, path string) {
	fp, err := archiveFingerprint(path)
	if err != nil || p.seen[path] == fp {
		return // gone, a directory, or done
	}
	p.seen[path] = fp
	start := p.clock.Now()
	imgs, err := ImportFile(ctx, p.client, p.snapshotter, path, map[string]string{LabelArchive: fp})
	if err != nil {
		p.log.Error("cannot preload an image archive; it is tried again when it changes", "file", path, "err", err)
		return
	}
	p.log.Info("preloaded images", "file", path, "images", imageNames(imgs), "took", p.clock.Since(start).Round(time.Millisecond))
}

// presentArchives are the fingerprints of the archives present images
// came from.
func (p *Preloader) presentArchives(ctx context.Context) (map[string]bool, error) {
	list, err := p.client.ImageService().List(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, im := range list {
		if fp := im.Labels[LabelArchive]; fp != "" {
			out[fp] = true
		}
	}
	return out, nil
}

// archiveFingerprint identifies a version of a regular file by path, size and
// modification time, without reading it.
func archiveFingerprint(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", path)
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())))
	return hex.EncodeToString(sum[:12]), nil
}
