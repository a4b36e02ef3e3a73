package hostile

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// File is a directory entry that is no manifest file, made by MakeFiles.
type File struct {
	// Name is the entry's name in the directory.
	Name string
	// Want is a piece of the message that refuses it.
	Want string
}

// MakeFiles creates, in dir, entries a manifest directory must survive (it
// needs root for the device): a FIFO, which blocks whoever opens it to
// read; a character device and a symlink to one; a socket; a directory; a
// symlink loop and a dangling symlink; a sparse file of a terabyte; and a
// file of mode 000, which root can still read, holding a broken manifest.
// limit is the size beyond which manifests are refused.
func MakeFiles(dir string, limit int) ([]File, error) {
	files := []File{
		{"fifo.yaml", "not a regular file (a FIFO)"},
		{"device.yaml", "not a regular file (a device)"},
		{"to-device.yaml", "not a regular file (a device)"},
		{"socket.yaml", "not a regular file (a socket)"},
		{"directory.yaml", "not a regular file (a directory)"},
		{"loop.yaml", "too many levels of symbolic links"},
		{"dangling.json", "broken symbolic link"},
		{"sparse-terabyte.yaml", fmt.Sprintf("more than the limit of %d", limit)},
		{"mode-000.yaml", "yaml: line"},
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	steps := []func() error{
		func() error { return unix.Mkfifo(path("fifo.yaml"), 0o644) },
		func() error { return unix.Mknod(path("device.yaml"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))) }, // /dev/zero
		func() error { return os.Symlink("/dev/zero", path("to-device.yaml")) },
		func() error { return makeSocket(path("socket.yaml")) },
		func() error { return os.Mkdir(path("directory.yaml"), 0o755) },
		func() error { return os.Symlink("loop.yaml", path("loop.yaml")) },
		func() error { return os.Symlink("nowhere/at/all.json", path("dangling.json")) },
		func() error {
			f, err := os.Create(path("sparse-terabyte.yaml"))
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(1 << 40)
		},
		func() error { return os.WriteFile(path("mode-000.yaml"), []byte("kind: Pod\n  bad: [\n"), 0o000) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("make %s: %w", files[i].Name, err)
		}
	}
	return files, nil
}

// makeSocket leaves a unix socket at path that nothing listens on.
func makeSocket(path string) error {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	ln.SetUnlinkOnClose(false)
	return ln.Close()
}
