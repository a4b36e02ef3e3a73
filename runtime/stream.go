package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/fifo"

	"github.com/podsup/podsup/logs"
)

// TerminalSize is a terminal's size in characters.
type TerminalSize struct {
	Width, Height uint16
}

// StreamIO are the streams of an interactive command or an attach: what the
// node API's exec, attach and run requests connect to a container.
type StreamIO struct {
	Stdin  io.Reader // nil: the command gets no stdin
	Stdout io.Writer // nil: discarded
	Stderr io.Writer // nil: discarded; unused with TTY, whose output is all on Stdout
	TTY    bool
	// Resize carries the client's terminal size changes; nil without a
	// terminal. Read until it closes or the command ends.
	Resize <-chan TerminalSize
}

// ExecStream runs cmd in a running container the way its own process runs
// (user, environment, working directory), with the client's streams, and
// returns its exit code. When ctx ends first (the client went away) the
// command is killed, with every process it started: it is never left
// running. The kubelet leaves that to the runtime's own streaming server,
// which keeps the process until its output blocks.
func (r *Runtime) ExecStream(ctx context.Context, id string, cmd []string, s StreamIO) (int, error) {
	var stdin *endReader
	if s.Stdin != nil {
		stdin = &endReader{r: s.Stdin, end: make(chan struct{})}
	}
	opts := []cio.Opt{cio.WithStreams(stdin.orNil(), s.Stdout, s.Stderr)}
	if s.TTY {
		opts = append(opts, cio.WithTerminal)
	}
	e, err := r.startExec(ctx, id, cmd, s.TTY, cio.NewCreator(append(opts, cio.WithFIFODir(r.fifoDir()))...))
	if err != nil {
		return -1, err
	}
	defer r.finishExec(e)
	stopResize := r.followResize(e.process, s.Resize)
	defer stopResize()
	stopStdin := r.closeStdinAtEnd(e.process, stdin)
	defer stopStdin()
	select {
	case st := <-e.status:
		e.exited = true
		return int(st.ExitCode()), nil
	case <-ctx.Done():
		e.kill()
		return -1, fmt.Errorf("exec in %s: %w", id, ctx.Err())
	}
}

// execProcess is a started exec and its FIFOs.
type execProcess struct {
	r           *Runtime
	containerID string
	process     containerd.Process
	streams     cio.IO
	status      <-chan containerd.ExitStatus
	exited      bool // its exit status came
	// stopWait ends the wait for the exit: waited for with a context of its
	// own, so that the caller's ending shows as ctx.Done, never as an exit.
	stopWait context.CancelFunc
}

// startExec starts cmd in container id with the IO newIO makes. The
// caller ends it with finishExec.
func (r *Runtime) startExec(ctx context.Context, id string, cmd []string, tty bool, newIO cio.Creator) (_ *execProcess, retErr error) {
	ctx = r.Context(ctx)
	task, proc, err := r.execTarget(ctx, id)
	if err != nil {
		return nil, err
	}
	p := *proc
	p.Args, p.Terminal, p.ConsoleSize = cmd, tty, nil
	execID := fmt.Sprintf("exec-%d", execSeq.Add(1))
	e := &execProcess{r: r, containerID: id}
	e.process, err = task.Exec(ctx, execID, &p, func(id string) (cio.IO, error) {
		i, err := newIO(id)
		e.streams = i
		return i, err
	})
	if err != nil {
		if e.streams != nil {
			e.streams.Close()
		}
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			deleteExec(r.Context(context.Background()), e.process, e.streams)
		}
	}()
	waitCtx, stopWait := context.WithCancel(r.Context(context.Background()))
	if e.status, err = e.process.Wait(waitCtx); err != nil {
		stopWait()
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	e.stopWait = stopWait
	defer func() {
		if retErr != nil {
			stopWait()
		}
	}()
	if err := e.process.Start(ctx); err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	return e, nil
}

// kill kills the command and every process it started, and waits a while
// for its exit.
func (e *execProcess) kill() {
	_ = e.process.Kill(e.r.Context(context.Background()), syscall.SIGKILL, containerd.WithKillAll)
	select {
	case <-e.status:
		e.exited = true
	case <-e.r.clock.After(killTimeout):
	}
}

// finishExec waits for the command's output to be copied, then deletes it.
func (r *Runtime) finishExec(e *execProcess) {
	r.drain(e.streams)
	if e.exited {
		r.deleteExited(e)
	} else {
		deleteExec(r.Context(context.Background()), e.process, e.streams)
	}
	e.stopWait()
}

// deleteExited deletes an exec process that has exited with one call to
// the shim, then lets its IO end as Process.Delete does. Process.Delete
// with WithProcessKill makes four calls (wait, kill, status, delete), each
// a round trip through containerd, for a process known to be gone: with
// the exec, wait and start, an exec probe made seven instead of four.
func (r *Runtime) deleteExited(e *execProcess) {
	ctx, cancel := context.WithTimeout(r.Context(context.Background()), cleanupTimeout)
	defer cancel()
	req := &tasks.DeleteProcessRequest{ContainerID: e.containerID, ExecID: e.process.ID()}
	if _, err := r.client.TaskService().DeleteProcess(ctx, req); err != nil {
		// The container went meanwhile, or containerd is away: the slow
		// path closes the IO whatever the shim says.
		deleteExec(ctx, e.process, e.streams)
		return
	}
	if e.streams != nil {
		e.streams.Cancel()
		e.streams.Wait()
		e.streams.Close()
	}
}

// resizer is what has a terminal to resize: an exec process or a task.
type resizer interface {
	Resize(ctx context.Context, w, h uint32) error
}

// followResize applies terminal size changes until sizes closes or the
// returned stop is called, which waits for the goroutine to end.
func (r *Runtime) followResize(p resizer, sizes <-chan TerminalSize) (stop func()) {
	if sizes == nil {
		return func() {}
	}
	return r.goUntilStopped(func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case size, ok := <-sizes:
				if !ok {
					return
				}
				if err := p.Resize(ctx, uint32(size.Width), uint32(size.Height)); err != nil && !errors.Is(err, context.Canceled) {
					r.log.Debug("cannot resize a terminal", "err", err)
				}
			}
		}
	})
}

// goUntilStopped runs f in a goroutine with a context that stop cancels;
// stop then waits for f to return.
func (r *Runtime) goUntilStopped(f func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(r.Context(context.Background()))
	done := make(chan struct{})
	go func() { // owned by stop
		defer close(done)
		f(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// Attach connects a client to a running container's own process: its
// output from now on (the log keeps what came before), its stdin when the
// container has one (stdin: true), and its terminal size. It returns when
// the output ends (the container exited), ctx ends, or the client cannot
// keep up. With stdinOnce, the container's stdin is closed when the
// client's ends, as the kubelet does for stdinOnce containers.
func (r *Runtime) Attach(ctx context.Context, id string, s StreamIO, stdinOnce bool) error {
	r.mu.Lock()
	a := r.attached[id]
	r.mu.Unlock()
	if a == nil || a.logs == nil {
		return fmt.Errorf("%w: %s", ErrNotRunning, id)
	}
	l, ok := a.task.IO().(*logIO)
	if !ok {
		return fmt.Errorf("%w: %s: its output is not followed", ErrNotRunning, id)
	}
	var streams []string
	if s.Stdout != nil {
		streams = append(streams, logs.Stdout)
	}
	if s.Stderr != nil {
		streams = append(streams, logs.Stderr)
	}
	t := l.taps.add(streams...)
	defer l.taps.remove(t)
	if s.Stdin != nil && l.config.Stdin != "" {
		in, err := fifo.OpenFifo(ctx, l.config.Stdin, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("attach to the stdin of %s: %w", id, err)
		}
		defer in.Close() // ends the copy below if it is blocked writing
		stdin := &endReader{r: s.Stdin, end: make(chan struct{})}
		go func() { // ends at the end of the client's stdin or of the FIFO
			_, _ = io.Copy(in, stdin)
			in.Close()
			if stdinOnce {
				l.closeStdin()
			}
		}()
		if stdinOnce { // the container's stdin ends with this client's
			stop := r.closeStdinAtEnd(a.task, stdin)
			defer stop()
		}
	}
	stopResize := r.followResize(a.task, s.Resize)
	defer stopResize()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-t.ch:
			if !ok {
				return nil
			}
			w := s.Stdout
			if c.stream == logs.Stderr && s.Stderr != nil && !s.TTY {
				w = s.Stderr
			}
			if _, err := w.Write(c.data); err != nil {
				return fmt.Errorf("attach to %s: %w", id, err)
			}
		}
	}
}

// endReader is a client's stdin that says when it has ended.
type endReader struct {
	r    io.Reader
	once sync.Once
	end  chan struct{} // closed at the end of r
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.end) })
	}
	return n, err
}

// orNil is e as a reader, or a nil interface for a nil e.
func (e *endReader) orNil() io.Reader {
	if e == nil {
		return nil
	}
	return e
}

// stdinCloser is what has a stdin the shim holds open: an exec process or
// a task.
type stdinCloser interface {
	CloseIO(ctx context.Context, opts ...containerd.IOCloserOpts) error
}

// closeStdinAtEnd closes the process's stdin once the client's has ended.
// The shim holds the stdin FIFO open for writing itself, so the process
// reads the end of its input only when told; containerd's CRI does the
// same. stop waits for the goroutine to end.
func (r *Runtime) closeStdinAtEnd(p stdinCloser, stdin *endReader) (stop func()) {
	if stdin == nil {
		return func() {}
	}
	return r.goUntilStopped(func(ctx context.Context) {
		select {
		case <-stdin.end:
			if err := p.CloseIO(ctx, containerd.WithStdinCloser); err != nil && ctx.Err() == nil {
				r.log.Debug("cannot close a process's stdin", "err", err)
			}
		case <-ctx.Done():
		}
	})
}
