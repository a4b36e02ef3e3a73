package runtime

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/fifo"

	"github.com/podsup/podsup/logs"
)

// copyBufferSize is the buffer of each output copy. containerd's cio uses a
// pooled 32 KiB buffer per stream, held while the stream is idle; with two
// streams per container that is most of podsup's heap on a busy node. Log
// lines are short; 4 KiB costs nothing in throughput.
const copyBufferSize = 4 << 10

// logIO copies a task's stdout and stderr FIFOs into the container's CRI log,
// implementing cio.IO. Its copy goroutines end when the shim closes the
// FIFOs (the task is gone) or when Close closes them (podsup stops: the
// shim's own reader keeps the container from blocking until podsup attaches
// again).
type logIO struct {
	config  cio.Config
	fifos   *cio.FIFOSet
	cancel  context.CancelFunc // aborts FIFOs still being opened
	wg      sync.WaitGroup     // the copy goroutines
	closers []io.Closer
	// copying counts the copy goroutines still running; the last one to
	// end closes drained.
	copying atomic.Int32
	drained chan struct{}
	// stdin is the held writer of the stdin FIFO; nil without stdin.
	stdin io.Closer
	// taps are the clients attached to the output.
	taps tapSet
}

var _ cio.IO = (*logIO)(nil)

func (l *logIO) Config() cio.Config { return l.config }
func (l *logIO) Cancel()            { l.cancel() }
func (l *logIO) Wait()              { l.wg.Wait() }

// detach stops copying, for podsup's shutdown: the FIFOs stay for the next
// podsup to attach to.
func (l *logIO) detach() error {
	l.cancel()
	var errs []error
	for _, c := range l.closers {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes the FIFOs and removes their directory, once the task is
// deleted.
func (l *logIO) Close() error {
	errs := []error{l.detach()}
	if l.fifos != nil {
		if err := l.fifos.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// closeStdin closes the held writer of the stdin FIFO: once every
// attached writer has gone too, the container reads the end of its stdin.
func (l *logIO) closeStdin() {
	if l.stdin != nil {
		l.stdin.Close()
	}
}

// detachIO stops copying a task's output without removing its FIFOs.
func detachIO(io cio.IO) {
	if l, ok := io.(*logIO); ok {
		l.detach()
		l.Wait()
	}
}

// logCreator makes FIFOs for a new task in dir and copies them into w. With
// stdin, the stdin FIFO is held open and never written: a container that
// reads its stdin waits, as under the kubelet when nobody attaches.
func logCreator(dir string, w *logs.Writer, tty, stdin bool) cio.Creator {
	return func(id string) (cio.IO, error) {
		fifos, err := cio.NewFIFOSetInDir(dir, id, tty)
		if err != nil {
			return nil, err
		}
		if !stdin {
			fifos.Stdin = ""
		}
		io, err := openLogIO(fifos, w)
		if err != nil {
			fifos.Close()
		}
		return io, err
	}
}

// logAttach reopens the FIFOs of a task started by an earlier podsup.
func logAttach(w *logs.Writer) cio.Attach {
	return func(fifos *cio.FIFOSet) (cio.IO, error) {
		if fifos == nil {
			return nil, errors.New("the task has no FIFOs to attach to")
		}
		return openLogIO(fifos, w)
	}
}

func openLogIO(fifos *cio.FIFOSet, w *logs.Writer) (_ cio.IO, retErr error) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &logIO{config: fifos.Config, fifos: fifos, cancel: cancel, drained: make(chan struct{})}
	defer func() {
		if retErr != nil {
			for _, c := range l.closers {
				c.Close()
			}
			cancel()
		}
	}()
	if fifos.Stdin != "" {
		// Opened for writing and held, never written.
		in, err := fifo.OpenFifo(ctx, fifos.Stdin, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700)
		if err != nil {
			return nil, err
		}
		l.closers = append(l.closers, in)
		l.stdin = in
	}
	streams := []struct{ path, name string }{{fifos.Stdout, logs.Stdout}}
	if !fifos.Terminal {
		streams = append(streams, struct{ path, name string }{fifos.Stderr, logs.Stderr})
	}
	var readers []io.Reader
	var dsts []io.Writer
	for _, s := range streams {
		if s.path == "" {
			continue
		}
		r, err := fifo.OpenFifo(ctx, s.path, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700)
		if err != nil {
			return nil, err
		}
		l.closers = append(l.closers, r)
		var dst io.Writer = io.Discard
		if w != nil {
			dst = w.Stream(s.name)
		}
		readers, dsts = append(readers, r), append(dsts, &tee{log: dst, taps: &l.taps, stream: s.name})
	}
	l.copying.Store(int32(len(readers)))
	if len(readers) == 0 {
		close(l.drained)
		l.taps.closeAll()
	}
	for i, r := range readers {
		l.wg.Add(1)
		go func() { // owned by l: ends at EOF or when Close closes r
			defer l.wg.Done()
			buf := make([]byte, copyBufferSize)
			_, _ = io.CopyBuffer(dsts[i], r, buf)
			if l.copying.Add(-1) == 0 {
				close(l.drained)
				l.taps.closeAll() // the output ended: so do the attaches
			}
		}()
	}
	return l, nil
}
