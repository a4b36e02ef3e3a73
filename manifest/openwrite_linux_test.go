package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestOpenForWritingOneLook: of several files asked about at once, only
// those a process holds open for writing are reported, whether named
// directly or through a symbolic link.
func TestOpenForWritingOneLook(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	for _, name := range []string{"writing.yaml", "reading.yaml", "closed.yaml"} {
		if err := os.WriteFile(path(name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(path("writing.yaml"), path("link.yaml")); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path("writing.yaml"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := os.Open(path("reading.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := openForWriting([]string{path("writing.yaml"), path("reading.yaml"), path("closed.yaml"), path("link.yaml"), path("absent.yaml")})
	want := map[string]bool{path("writing.yaml"): true, path("link.yaml"): true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("open for writing: %v, want %v", got, want)
	}
}
