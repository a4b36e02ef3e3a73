package manifest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/utils/clock"
)

// Defaults of the directory source.
const (
	// DefaultQuiet is how long a file that is still open for writing, empty
	// or missing must stay untouched before it is acted on: long enough to
	// cover every step of an editor's save.
	DefaultQuiet = 250 * time.Millisecond
	// DefaultSettle is how long after its last event a file is first looked
	// at. A file that no process holds open for writing and that is not
	// empty is complete (whole writes, renames into place), so it is read
	// then, without waiting out the quiet period.
	DefaultSettle = 25 * time.Millisecond
	// DefaultMaxWriterWait bounds how long a file still open for writing by
	// another process is waited for before it is read anyway.
	DefaultMaxWriterWait = 10 * time.Second
	// removeGrace is how many quiet periods a file renamed away has to
	// return before its pods are removed. A file deleted is not waited
	// for: no editor or tool saves by unlinking and writing later.
	removeGrace = 4
	// missingDirPoll is how often a missing directory is looked for.
	missingDirPoll = time.Second
)

// IsManifestName reports whether a directory entry may hold a manifest: a
// name ending in .yaml, .yml or .json that is not a dotfile. Editor backups
// (etcd.yaml~, etcd.yaml.bak, .etcd.yaml.swp), package-manager leftovers
// (etcd.yaml.dpkg-old) and vim's 4913 probe all fail this test; the kubelet
// turns each of them into a pod.
func IsManifestName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// DirSource reads the manifests of one directory and sends a snapshot
// whenever what they declare changes. It watches with fsnotify and re-lists
// the whole directory every resync period, so a missed event only delays a
// change. Each file is read once it has been quiet for a moment and no
// process holds it open for writing, so every way of saving a file ends in
// one update with its final content.
type DirSource struct {
	dir         string
	static      Static
	resync      time.Duration
	settle      time.Duration
	quiet       time.Duration
	maxWait     time.Duration
	clock       clock.WithTicker
	log         *slog.Logger
	openWriters func(paths []string) map[string]bool
	syncs       chan chan syncState // nil but in tests; see withSync

	files    map[string]*fileState // by base name
	ignored  map[string]bool       // names already logged as ignored
	watched  *dirIdentity          // the directory being watched; nil while missing
	missing  error                 // why the directory cannot be read, if it cannot
	lastSent string                // fingerprint of the last snapshot sent
	sent     bool
}

// fileState is what the source knows of one file.
type fileState struct {
	sum  [32]byte // content of the last read
	objs *Objects // the last good objects; nil if the file was never valid
	err  error    // why the current content is not used
}

type dirIdentity struct{ dev, ino uint64 }

// DirOption configures a DirSource.
type DirOption func(*DirSource)

// WithResync sets the full re-list period (--file-check-frequency).
func WithResync(d time.Duration) DirOption { return func(s *DirSource) { s.resync = d } }

// WithQuiet sets how long a file that is open for writing, empty or missing
// must be untouched before it is acted on.
func WithQuiet(d time.Duration) DirOption { return func(s *DirSource) { s.quiet = d } }

// WithClock sets the clock, for tests.
func WithClock(c clock.WithTicker) DirOption { return func(s *DirSource) { s.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) DirOption { return func(s *DirSource) { s.log = l } }

// withWriterCheck replaces the check for processes writing a file, for tests.
func withWriterCheck(f func([]string) map[string]bool) DirOption {
	return func(s *DirSource) { s.openWriters = f }
}

// syncState is what Run answers a test that syncs with it.
type syncState struct {
	watching  bool   // a watcher is open on the directory
	lastEvent string // base name of the last watch event handled
}

// withSync makes Run answer each request sent on syncs (on a buffered
// channel) once it has handled everything its clock has fired, for tests
// that drive the clock: after a step and an answer naming an event of
// theirs, they know the source acted on every change they made and every
// timer that was due.
func withSync(syncs chan chan syncState) DirOption {
	return func(s *DirSource) { s.syncs = syncs }
}

// NewDirSource returns a source for the manifests in dir.
func NewDirSource(dir string, st Static, opts ...DirOption) *DirSource {
	s := &DirSource{
		dir: dir, static: st,
		resync: 20 * time.Second, settle: DefaultSettle, quiet: DefaultQuiet, maxWait: DefaultMaxWriterWait,
		clock: clock.RealClock{}, log: slog.Default(), openWriters: openForWriting,
		files: map[string]*fileState{}, ignored: map[string]bool{},
	}
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.With("source", SourceFile, "dir", dir)
	return s
}

// Run watches the directory until ctx ends, sending snapshots to out.
func (s *DirSource) Run(ctx context.Context, out chan<- Update) {
	var watcher *fsnotify.Watcher
	closeWatcher := func() {
		if watcher != nil {
			watcher.Close()
			watcher = nil
		}
		s.watched = nil
	}
	defer closeWatcher()

	pending := map[string]*pendingRead{}
	timer := s.clock.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	relist := s.clock.NewTicker(s.resync)
	defer relist.Stop()
	poll := s.clock.NewTicker(missingDirPoll)
	defer poll.Stop()

	rearm := func() {
		if len(pending) == 0 {
			return
		}
		next := time.Time{}
		for _, p := range pending {
			if next.IsZero() || p.due.Before(next) {
				next = p.due
			}
		}
		timer.Stop()
		timer.Reset(max(next.Sub(s.clock.Now()), 0))
	}
	// watch (re)starts the watcher when the directory is there and is not
	// the one being watched, and re-lists it.
	watch := func(force bool) {
		id, err := identify(s.dir)
		if err != nil {
			closeWatcher()
			s.setMissing(err)
			return
		}
		if s.watched == nil || *s.watched != *id {
			closeWatcher()
			w, err := fsnotify.NewWatcher()
			if err == nil {
				err = w.Add(s.dir)
				if err != nil {
					w.Close()
				}
			}
			if err != nil {
				s.setMissing(fmt.Errorf("watch %s: %w", s.dir, err))
				return
			}
			watcher, s.watched = w, id
			if s.missing != nil {
				s.log.Info("manifest directory is back")
			}
			s.missing = nil
			force = true
		}
		if force {
			s.relist(pending)
		}
	}

	watch(true)
	s.send(ctx, out)
	readDue := func() {
		s.readDue(pending)
		rearm()
	}
	// fired handles one thing the clock fired, if there is one.
	fired := func() bool {
		select {
		case <-timer.C():
			readDue()
		case <-relist.C():
			watch(true)
		case <-poll.C():
			if s.watched == nil {
				watch(false)
			}
		default:
			return false
		}
		return true
	}
	var lastEvent string // for syncs
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if watcher != nil {
			events, errs = watcher.Events, watcher.Errors
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				closeWatcher()
				continue
			}
			lastEvent = filepath.Base(ev.Name)
			if filepath.Clean(ev.Name) == filepath.Clean(s.dir) {
				if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					closeWatcher()
					watch(false)
				}
				break
			}
			name := filepath.Base(ev.Name)
			if !s.candidate(name) {
				continue
			}
			now := s.clock.Now()
			p := pending[name]
			if p == nil {
				p = &pendingRead{first: now}
				pending[name] = p
			}
			p.last, p.due = now, now.Add(s.settle)
			p.unlinked = ev.Op == fsnotify.Remove
			rearm()
			continue
		case err, ok := <-errs:
			if !ok {
				closeWatcher()
				continue
			}
			// An overflow means events were lost: read everything again.
			s.log.Warn("watch error; re-listing", "err", err)
			s.relist(pending)
		case <-timer.C():
			readDue()
		case <-relist.C():
			watch(true)
		case <-poll.C():
			if s.watched != nil {
				continue
			}
			watch(false)
		case reply := <-s.syncs:
			for fired() {
			}
			s.send(ctx, out)
			reply <- syncState{watching: watcher != nil, lastEvent: lastEvent}
		}
		s.send(ctx, out)
	}
}

// pendingRead is a file waiting to be read: when its first and last events
// came, when to look at it next, and whether the last event was its
// deletion.
type pendingRead struct {
	first, last, due time.Time
	unlinked         bool
}

// readDue reads each pending file whose time has come, unless another
// process still has it open for writing (a slow writer or an editor
// mid-save), or it is empty or renamed away (truncated before being
// written, or moved aside before the new one is written, as editors and
// kubeadm's upgrade do): then it waits until it has been quiet for the
// quiet period (up to maxWait for a writer, removeGrace quiet periods for
// a file moved away), so no pod is ever built from, or removed because of,
// a half-written file. A file deleted is removed at once: deleting is how
// a person or a tool removes a pod, and no save unlinks and writes later.
func (s *DirSource) readDue(pending map[string]*pendingRead) {
	now := s.clock.Now()
	// One look through every process's open files for all the files due:
	// a batch of manifests written at once costs one, not one each.
	var check []string
	for name, p := range pending {
		if !p.due.After(now) && now.Sub(p.first) < s.maxWait {
			check = append(check, filepath.Join(s.dir, name))
		}
	}
	var writing map[string]bool
	if len(check) > 0 {
		writing = s.openWriters(check)
	}
	for name, p := range pending {
		if p.due.After(now) {
			continue
		}
		path := filepath.Join(s.dir, name)
		quietFor := now.Sub(p.last)
		if now.Sub(p.first) < s.maxWait && writing[path] {
			p.due = now.Add(s.quiet)
			continue
		}
		movedAway := !p.unlinked && missing(path) && s.files[name] != nil
		if quietFor < s.quiet && (isEmpty(path) || movedAway) {
			p.due = p.last.Add(s.quiet)
			continue
		}
		// A file moved away gets a few quiet periods more to come back.
		if movedAway && now.Sub(p.first) < removeGrace*s.quiet {
			p.due = now.Add(s.quiet)
			continue
		}
		delete(pending, name)
		s.read(name)
	}
}

func missing(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// isEmpty reports whether path is a regular file of zero bytes.
func isEmpty(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Size() == 0
}

// relist reads every manifest in the directory and forgets files that are
// gone. Files waiting out their quiet period are left to the timer.
func (s *DirSource) relist(pending map[string]*pendingRead) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		s.setMissing(err)
		return
	}
	present := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !s.candidate(name) {
			continue
		}
		present[name] = true
		if _, waiting := pending[name]; !waiting {
			s.read(name)
		}
	}
	for name := range s.files {
		if !present[name] && pending[name] == nil {
			s.log.Info("manifest removed", "file", name)
			delete(s.files, name)
		}
	}
}

// candidate filters names, logging each ignored look-alike once so a person
// wondering why etcd.yaml.bak does nothing finds out.
func (s *DirSource) candidate(name string) bool {
	if IsManifestName(name) {
		return true
	}
	if !s.ignored[name] && looksLikeManifest(name) {
		s.ignored[name] = true
		s.log.Info("ignoring file: only *.yaml, *.yml and *.json files that are not dotfiles are manifests", "file", name)
	}
	return false
}

func looksLikeManifest(name string) bool {
	l := strings.ToLower(name)
	return strings.Contains(l, ".yaml") || strings.Contains(l, ".yml") || strings.Contains(l, ".json")
}

// read reads one file and records what it declares. A file that is gone
// removes its objects; a file that cannot be read or parsed keeps its last
// good objects and records why.
func (s *DirSource) read(name string) {
	path := filepath.Join(s.dir, name)
	data, err := readManifestFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(path); errors.Is(lerr, fs.ErrNotExist) {
			// Files vanish one by one when the whole directory goes; their
			// pods stay until the directory returns (see setMissing).
			if id, derr := identify(s.dir); derr != nil || s.watched == nil || *id != *s.watched {
				if derr == nil {
					derr = fmt.Errorf("%s was replaced", s.dir)
				}
				s.setMissing(derr)
				return
			}
			if _, known := s.files[name]; known {
				s.log.Info("manifest removed", "file", name)
				delete(s.files, name)
			}
			return
		}
		err = fmt.Errorf("%s: broken symbolic link", path)
	}
	st := s.files[name]
	if st == nil {
		st = &fileState{}
		s.files[name] = st
	}
	if err != nil {
		if st.err == nil || st.err.Error() != err.Error() {
			s.log.Error("cannot read manifest; keeping its last good pods", "file", name, "err", err)
		}
		st.err, st.sum = err, [32]byte{}
		return
	}
	sum := sha256.Sum256(data)
	if sum == st.sum {
		return
	}
	st.sum = sum
	objs, err := Parse(path, data, s.static)
	if err != nil {
		s.log.Error("invalid manifest; keeping its last good pods", "file", name, "err", err)
		st.err = err
		return
	}
	for _, w := range objs.Warnings {
		s.log.Warn("manifest warning", "file", name, "warning", w.Error())
	}
	s.log.Info("manifest read", "file", name, "pods", len(objs.Pods), "configmaps", len(objs.ConfigMaps), "secrets", len(objs.Secrets))
	st.objs, st.err = objs, nil
}

// readManifestFile reads a regular file of bounded size. It never opens
// anything else: a FIFO would block the source forever.
func readManifestFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, fileKind(info.Mode()))
	}
	if info.Size() > MaxManifestBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d", path, info.Size(), MaxManifestBytes)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil || !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%s: more than the limit of %d bytes", path, MaxManifestBytes)
	}
	return data, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

func (s *DirSource) setMissing(err error) {
	if s.missing == nil {
		if len(s.files) > 0 {
			s.log.Error("manifest directory unreadable; keeping its pods until it returns", "err", err)
		} else {
			s.log.Warn("manifest directory unreadable; waiting for it", "err", err)
		}
	}
	s.missing = err
}

// send sends a snapshot if what the directory declares, or its problems,
// changed since the last one.
func (s *DirSource) send(ctx context.Context, out chan<- Update) {
	u := s.snapshot()
	fp := fingerprint(u)
	if s.sent && fp == s.lastSent {
		return
	}
	select {
	case out <- u:
		s.sent, s.lastSent = true, fp
	case <-ctx.Done():
	}
}

// snapshot builds the source's update. Files count in lexical order, so when
// two declare the same pod the first one wins and the other is a problem.
func (s *DirSource) snapshot() Update {
	u := Update{Source: SourceFile}
	if s.missing != nil {
		u.Problems = append(u.Problems, Problem{Origin: s.dir, Err: s.missing})
	}
	names := sortedKeys(s.files)
	owner := map[string]string{}
	for _, name := range names {
		st := s.files[name]
		if st.err != nil {
			u.Problems = append(u.Problems, Problem{Origin: filepath.Join(s.dir, name), Err: st.err})
		}
		if st.objs == nil {
			continue
		}
		for _, pod := range st.objs.Pods {
			key := PodKey(pod)
			if first, dup := owner[key]; dup {
				u.Problems = append(u.Problems, Problem{Origin: filepath.Join(s.dir, name), Err: &Error{
					Origin: filepath.Join(s.dir, name), Object: "pod " + key, Field: "metadata.name",
					Msg: fmt.Sprintf("already declared by %s, which comes first; this one is ignored", first),
				}})
				continue
			}
			owner[key] = name
			u.Pods = append(u.Pods, pod)
		}
		u.ConfigMaps = append(u.ConfigMaps, st.objs.ConfigMaps...)
		u.Secrets = append(u.Secrets, st.objs.Secrets...)
		u.addWarnings(st.objs)
	}
	return u
}

// fingerprint identifies a snapshot's content: the UIDs of its pods, the
// versions of its other objects and its problems.
func fingerprint(u Update) string {
	var parts []string
	for _, p := range u.Pods {
		parts = append(parts, "pod "+PodKey(p)+" "+string(p.UID))
	}
	for _, c := range u.ConfigMaps {
		parts = append(parts, fmt.Sprintf("cm %s %x", Key(c.Namespace, c.Name), sha256.Sum256(canonical(c))))
	}
	for _, c := range u.Secrets {
		parts = append(parts, fmt.Sprintf("secret %s %x", Key(c.Namespace, c.Name), sha256.Sum256(canonical(c))))
	}
	for _, p := range u.Problems {
		parts = append(parts, "problem "+p.Origin+" "+p.Err.Error())
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

func identify(dir string) (*dirIdentity, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return &dirIdentity{}, nil
	}
	return &dirIdentity{dev: uint64(st.Dev), ino: st.Ino}, nil
}
