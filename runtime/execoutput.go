package runtime

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/cio"
	"k8s.io/utils/clock"
)

// execOutput is the IO of a command run by Exec: one FIFO that the shim
// writes both stdout and stderr to, read by one goroutine into w. cio's
// FIFO set for the same work makes a directory, two FIFOs, two copying
// goroutines and four opening ones, and Exec a seventh to wait for them:
// an exec probe paid for all of it every period.
//
// The shim opens the path once for stdout and once for stderr, and starts
// copying stdout before it opens it for stderr; by then a quick command
// may have ended, so the FIFO can be without writers for a moment while
// stderr is still to come. podsup therefore holds a writer of its own
// (keep) until the process is deleted: containerd's Delete returns once
// the shim has copied everything, then calls Cancel, which lets go of it,
// and Wait, which reads to the end.
type execOutput struct {
	path   string
	reader *os.File
	keep   *os.File // podsup's own writer, so the end comes only after Cancel
	done   chan struct{}
	clock  clock.Clock
	once   sync.Once
}

var _ cio.IO = (*execOutput)(nil)

// execOutputSuffix ends the name of an exec's output FIFO.
const execOutputSuffix = "-output"

// newExecOutput makes the FIFO of exec id in dir and starts copying it to
// w. Both ends are opened without blocking (the reader first, so the
// writer finds it) and read through Go's poller, with no thread waiting.
func newExecOutput(dir, id string, w io.Writer, clk clock.Clock) (_ *execOutput, retErr error) {
	path := filepath.Join(dir, id+execOutputSuffix)
	if err := syscall.Mkfifo(path, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("exec output: %w", err)
	}
	defer func() {
		if retErr != nil {
			os.Remove(path)
		}
	}()
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("exec output: %w", err)
	}
	keep, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("exec output: %w", err)
	}
	o := &execOutput{path: path, reader: r, keep: keep, done: make(chan struct{}), clock: clk}
	go func() { // ends at the FIFO's end (after Cancel), or when Close closes the reader
		defer close(o.done)
		buf := make([]byte, copyBufferSize)
		// Through buf: *os.File's WriteTo would copy through a 32 KiB
		// buffer of its own, made for every exec (28 % of what podsup
		// allocated while running exec probes).
		_, _ = io.CopyBuffer(w, struct{ io.Reader }{r}, buf)
	}()
	return o, nil
}

// execOutputCreator is a cio.Creator of execOutputs writing to w.
func (r *Runtime) execOutputCreator(w io.Writer) cio.Creator {
	return func(id string) (cio.IO, error) { return newExecOutput(r.fifoDir(), id, w, r.clock) }
}

func (o *execOutput) Config() cio.Config {
	return cio.Config{Stdout: o.path, Stderr: o.path}
}

// Cancel lets go of podsup's writer: the copy ends once the shim's
// writers are closed too.
func (o *execOutput) Cancel() { o.keep.Close() }

// Wait waits until the output is copied, at most drainTimeout: a writer
// the shim never closes must not hold podsup.
func (o *execOutput) Wait() {
	select {
	case <-o.done:
	case <-o.clock.After(drainTimeout):
		o.reader.Close()
		<-o.done
	}
}

// Close closes both ends, which ends the copy, and removes the FIFO.
func (o *execOutput) Close() error {
	var err error
	o.once.Do(func() {
		o.keep.Close()
		if err = o.reader.Close(); errors.Is(err, os.ErrClosed) {
			err = nil // by Wait, at its timeout
		}
		if rerr := os.Remove(o.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	})
	return err
}

// removeExecOutputs removes the output FIFOs a podsup that was killed left
// behind: their commands ended with it, and exec IDs start again at 1.
func removeExecOutputs(dir string, log *slog.Logger) {
	left, _ := filepath.Glob(filepath.Join(dir, "exec-*"+execOutputSuffix))
	for _, path := range left {
		if err := os.Remove(path); err != nil {
			log.Warn("cannot remove an exec output FIFO left by an earlier podsup", "path", path, "err", err)
		}
	}
}
