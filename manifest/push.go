package manifest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrNotFound is a pushed manifest that does not exist.
var ErrNotFound = errors.New("no such manifest")

// PushSource holds manifests pushed through the API (PUT and DELETE
// /manifests/{name}). Each is validated exactly as a file is, then written
// under its directory, so pushed pods survive a restart of podsup; the
// source sends a snapshot whenever one is put or deleted.
type PushSource struct {
	dir    string
	static Static
	log    *slog.Logger

	mu      sync.Mutex
	objects map[string]*Objects // by name
	changed chan struct{}       // size 1: a pending snapshot is never lost
}

// NewPushSource loads the manifests stored in dir, reporting each that no
// longer parses (a podsup upgrade that validates more strictly) and keeping
// the rest.
func NewPushSource(dir string, st Static, log *slog.Logger) (*PushSource, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pushed manifests: %w", err)
	}
	p := &PushSource{dir: dir, static: st, log: log.With("source", SourceAPI), objects: map[string]*Objects{}, changed: make(chan struct{}, 1)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pushed manifests: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			// What a crash or a full disk left of a write that never
			// completed: the manifest it was to replace is intact.
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				p.log.Warn("cannot remove an unfinished write", "file", e.Name(), "err", err)
			}
			continue
		}
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || CheckPushName(name) != nil {
			continue
		}
		data, err := readManifestFile(filepath.Join(dir, e.Name()))
		if err == nil {
			var objs *Objects
			if objs, err = Parse(p.origin(name), data, st); err == nil {
				p.objects[name] = objs
				continue
			}
		}
		p.log.Error("a pushed manifest can no longer be read; ignoring it", "name", name, "err", err)
	}
	return p, nil
}

// CheckPushName refuses a manifest name that is not a DNS label: it names a
// file, so it must never hold a path.
func CheckPushName(name string) error {
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return fmt.Errorf("manifest name %q: %s", name, strings.Join(msgs, "; "))
	}
	return nil
}

func (p *PushSource) origin(name string) string { return "api:" + name }

func (p *PushSource) path(name string) string { return filepath.Join(p.dir, name+".yaml") }

// Put validates a manifest and, if it is valid, stores it under name,
// replacing what was there. The error lists every problem, as a file's would.
func (p *PushSource) Put(name string, data []byte) (*Objects, error) {
	if err := CheckPushName(name); err != nil {
		return nil, err
	}
	objs, err := Parse(p.origin(name), data, p.static)
	if err != nil {
		return nil, err
	}
	if len(objs.Pods)+len(objs.ConfigMaps)+len(objs.Secrets) == 0 {
		return nil, newError(p.origin(name), "", "", "the manifest declares nothing; delete it instead")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for other, o := range p.objects {
		if other == name {
			continue
		}
		for _, a := range objs.Pods {
			for _, b := range o.Pods {
				if PodKey(a) == PodKey(b) {
					return nil, newError(p.origin(name), "pod "+PodKey(a), "metadata.name", "already pushed as manifest %q", other)
				}
			}
		}
	}
	if err := writeFileAtomic(p.path(name), data); err != nil {
		return nil, fmt.Errorf("store manifest %q: %w", name, err)
	}
	p.objects[name] = objs
	p.log.Info("manifest pushed", "name", name, "pods", len(objs.Pods))
	p.notify()
	return objs, nil
}

// Delete removes a pushed manifest and so its pods.
func (p *PushSource) Delete(name string) error {
	if err := CheckPushName(name); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.objects[name]; !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if err := os.Remove(p.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove manifest %q: %w", name, err)
	}
	delete(p.objects, name)
	p.log.Info("manifest deleted", "name", name)
	p.notify()
	return nil
}

// Names lists the pushed manifests.
func (p *PushSource) Names() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return sortedKeys(p.objects)
}

func (p *PushSource) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Run sends a snapshot at start and after every change until ctx ends.
func (p *PushSource) Run(ctx context.Context, out chan<- Update) {
	for {
		select {
		case out <- p.snapshot():
		case <-ctx.Done():
			return
		}
		select {
		case <-p.changed:
		case <-ctx.Done():
			return
		}
	}
}

func (p *PushSource) snapshot() Update {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := Update{Source: SourceAPI}
	names := sortedKeys(p.objects)
	sort.Strings(names)
	for _, n := range names {
		o := p.objects[n]
		u.Pods = append(u.Pods, o.Pods...)
		u.ConfigMaps = append(u.ConfigMaps, o.ConfigMaps...)
		u.Secrets = append(u.Secrets, o.Secrets...)
		u.addWarnings(o)
	}
	return u
}

// tmpPrefix starts the name of a manifest being written.
const tmpPrefix = ".tmp-"

// writeFileAtomic writes a file whole or not at all: a crash mid-write
// never leaves a half manifest behind.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), tmpPrefix)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
