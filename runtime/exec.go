package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrExecTimeout is a command run by Exec that outlived its timeout and was
// killed.
var ErrExecTimeout = errors.New("timed out")

// ErrNotRunning is an Exec in a container that has no running task.
var ErrNotRunning = errors.New("container is not running")

// maxExecOutput bounds the output Exec returns.
const maxExecOutput = 10 << 10

var execSeq atomic.Uint64

// Exec runs cmd in a running container the way its own process runs (user,
// environment, working directory), kills it at timeout, and returns its
// exit code and up to 10 KiB of its output, stdout and stderr together,
// read through one FIFO (see execOutput). (Letting
// the shim write the output to a file, which spared podsup the copy, lost
// the output of about one quick failing command in twelve on containerd
// 1.6: a failed exec probe then had no message.)
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, []byte, error) {
	out := NewHeadBuffer(maxExecOutput)
	e, err := r.startExec(ctx, id, cmd, false, r.execOutputCreator(out))
	if err != nil {
		return -1, nil, err
	}
	timer := r.clock.NewTimer(timeout)
	defer timer.Stop()
	code, timedOut := -1, false
	select {
	case st := <-e.status:
		code, e.exited = int(st.ExitCode()), true
	case <-timer.C():
		timedOut = true
	case <-ctx.Done():
		timedOut = true
	}
	if timedOut {
		e.kill() // at the deadline, with every process it started
	}
	r.finishExec(e)
	output := out.Bytes()
	if timedOut {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return -1, output, ctx.Err()
		}
		return -1, output, ErrExecTimeout
	}
	return code, output, nil
}

// drainTimeout bounds the wait for an exec's output once it has exited.
const drainTimeout = 5 * time.Second

// drain waits until the copies of an exec's output reach the end of its
// FIFOs, which the shim closes once the process has exited, or for
// drainTimeout. containerd's Delete closes the FIFOs before it waits for
// the copies, and a quick failing command's message was sometimes lost to
// that (an exec probe failed with no output, one run in a few hundred).
func (r *Runtime) drain(streams cio.IO) {
	if streams == nil {
		return
	}
	if _, ok := streams.(*execOutput); ok {
		return // its end comes with the Delete (see execOutput)
	}
	done := make(chan struct{})
	go func() { // ends with the copies: at the FIFOs' end, or when deleteExec closes them
		streams.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-r.clock.After(drainTimeout):
	}
}

// deleteExec deletes an exec process and closes its FIFOs. containerd's
// Delete closes them only when the shim answers: when the container went
// while the command ran (a container replaced during an exec probe, often
// on a busy machine), it does not, and two copying goroutines and four
// FIFO descriptors were left for good with each such exec.
func deleteExec(ctx context.Context, process containerd.Process, streams cio.IO) {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	if _, err := process.Delete(ctx, containerd.WithProcessKill); err != nil && streams != nil {
		streams.Cancel()
		streams.Close() // ends the copies, which the shim may never end
		streams.Wait()
	}
}

// execTarget returns a running container's task and process spec, cached
// for the tasks this process follows.
func (r *Runtime) execTarget(ctx context.Context, id string) (containerd.Task, *specs.Process, error) {
	r.mu.Lock()
	a := r.attached[id]
	r.mu.Unlock()
	if a != nil && a.proc != nil {
		return a.task, a.proc, nil
	}
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrNotRunning, id, err)
	}
	spec, err := c.Spec(ctx)
	if err != nil || spec.Process == nil {
		return nil, nil, fmt.Errorf("spec of %s: %w", id, err)
	}
	task := taskOf(a)
	if task == nil {
		if task, err = c.Task(ctx, nil); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrNotRunning, id, err)
		}
	}
	if a != nil {
		r.mu.Lock()
		a.proc = spec.Process
		r.mu.Unlock()
	}
	return task, spec.Process, nil
}

// HeadBuffer keeps the first max bytes written to it, from stdout and
// stderr at once, and takes (and drops) the rest so the copies never stall.
type HeadBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

// NewHeadBuffer keeps the first max bytes written to it.
func NewHeadBuffer(max int) *HeadBuffer { return &HeadBuffer{max: max} }

func (b *HeadBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes are the bytes kept.
func (b *HeadBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf
}
