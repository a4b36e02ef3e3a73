package volume

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File is one file of a projected volume: a ConfigMap or Secret key, or a
// downward API field.
type File struct {
	Data []byte
	Mode int32
}

// dataDirName is the symlink that points at the current version of a
// projected volume's files; user-visible names point through it.
const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// writeAtomic makes dir hold exactly payload, as the kubelet's AtomicWriter
// does: the files go into a new timestamped directory, the ..data symlink is
// switched to it with one rename, and each top-level name is a symlink
// through ..data. A container reading the volume sees either the old files
// or the new ones, never a mix. It reports whether anything changed; an
// unchanged payload writes nothing. gid, when not negative, owns the files
// (fsGroup) and can read them.
func writeAtomic(dir string, payload map[string]File, gid int64, now time.Time) (bool, error) {
	for p := range payload {
		if err := validPath(p); err != nil {
			return false, err
		}
	}
	oldName, _ := os.Readlink(filepath.Join(dir, dataDirName))
	if oldName != "" && sameContent(filepath.Join(dir, oldName), payload, gid) {
		return false, nil
	}
	tsDir, err := os.MkdirTemp(dir, now.UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, fmt.Errorf("create data directory: %w", err)
	}
	if err := writePayload(tsDir, payload, gid); err != nil {
		os.RemoveAll(tsDir)
		return false, err
	}
	tmpLink := filepath.Join(dir, newDataDirName)
	os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		os.RemoveAll(tsDir)
		return false, fmt.Errorf("link new data: %w", err)
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		os.Remove(tmpLink)
		os.RemoveAll(tsDir)
		return false, fmt.Errorf("switch data: %w", err)
	}
	if err := linkTopLevel(dir, payload); err != nil {
		return true, err
	}
	if oldName != "" {
		if err := os.RemoveAll(filepath.Join(dir, oldName)); err != nil {
			return true, fmt.Errorf("remove old data: %w", err)
		}
	}
	return true, nil
}

// validPath refuses paths that could leave the volume or clash with the
// writer's own names.
func validPath(p string) error {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, "..") {
		return fmt.Errorf("invalid path %q in volume", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "" {
			return fmt.Errorf("invalid path %q in volume", p)
		}
	}
	return nil
}

func writePayload(dir string, payload map[string]File, gid int64) error {
	for p, f := range payload {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(f.Mode) & fs.ModePerm
		if gid >= 0 {
			mode |= 0o040 // fsGroup can read
		}
		if err := os.WriteFile(full, f.Data, mode); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.Chmod(full, mode); err != nil { // WriteFile's mode is masked by umask
			return err
		}
		if gid >= 0 {
			if err := os.Lchown(full, -1, int(gid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameContent reports whether the files under dir are exactly payload.
func sameContent(dir string, payload map[string]File, gid int64) bool {
	found := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		f, ok := payload[rel]
		if !ok {
			return errors.New("extra file")
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(f.Mode) & fs.ModePerm
		if gid >= 0 {
			want |= 0o040
		}
		if info.Mode().Perm() != want {
			return errors.New("mode differs")
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, f.Data) {
			return errors.New("content differs")
		}
		found++
		return nil
	})
	return err == nil && found == len(payload)
}

// linkTopLevel makes each top-level name of the payload a symlink through
// ..data and removes names the payload no longer has.
func linkTopLevel(dir string, payload map[string]File) error {
	want := map[string]bool{}
	for p := range payload {
		want[strings.SplitN(p, "/", 2)[0]] = true
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		link := filepath.Join(dir, n)
		target := filepath.Join(dataDirName, n)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("link %s: %w", n, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") || want[n] {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}
