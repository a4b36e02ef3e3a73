package runtime

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/errdefs"

	"github.com/podsup/podsup/logs"
)

// attachment is a task this process follows: it copies the task's output
// into the container's log and waits for its exit.
type attachment struct {
	task   containerd.Task
	logs   *logs.Writer // nil for sandboxes
	cancel context.CancelFunc
}

// newLogWriter opens a container's CRI log.
func (r *Runtime) newLogWriter(path string) (*logs.Writer, error) {
	return logs.NewWriter(path, logs.WithMaxSize(r.logMaxSize), logs.WithMaxFiles(r.logMaxFiles), logs.WithClock(r.clock), logs.WithLogger(r.log))
}

// streams are the cio options that send a task's output to w.
func streams(w *logs.Writer, tty bool, stdin io.Reader) []cio.Opt {
	if w == nil {
		return []cio.Opt{cio.WithStreams(nil, io.Discard, io.Discard)}
	}
	opts := []cio.Opt{cio.WithStreams(stdin, w.Stream("stdout"), w.Stream("stderr"))}
	if tty {
		opts = append(opts, cio.WithTerminal)
	}
	return opts
}

// adopt follows a task that this process did not start: after podsup
// restarts, output that accumulated in the FIFOs while it was away is read
// into the log and the exit monitor is started again.
func (r *Runtime) adopt(ctx context.Context, key string, rec containers.Container) error {
	r.mu.Lock()
	_, done := r.attached[rec.ID]
	closed := r.closed
	r.mu.Unlock()
	if done || closed {
		return nil
	}
	c, err := r.client.LoadContainer(ctx, rec.ID)
	if err != nil {
		return err
	}
	var lw *logs.Writer
	attach := cio.NewAttach(streams(nil, false, nil)...)
	if path := rec.Labels[LabelLogPath]; path != "" {
		if lw, err = r.newLogWriter(path); err != nil {
			return err
		}
		attach = cio.NewAttach(streams(lw, rec.Labels[labelTTY] == "true", nil)...)
	}
	task, err := c.Task(ctx, attach)
	if err != nil {
		closeLog(lw)
		return fmt.Errorf("load task: %w", err)
	}
	exitCh, err := task.Wait(r.Context(r.stopCtx))
	if err != nil {
		closeLog(lw)
		return fmt.Errorf("wait for task: %w", err)
	}
	r.log.Debug("adopted task", "pod", key, "container", rec.ID)
	r.track(key, rec.ID, task, lw, exitCh)
	return nil
}

func closeLog(w *logs.Writer) {
	if w != nil {
		w.Close()
	}
}

// track records a followed task and starts its exit monitor, owned by the
// runtime and stopped by untrack or Close.
func (r *Runtime) track(key, id string, task containerd.Task, lw *logs.Writer, exitCh <-chan containerd.ExitStatus) {
	ctx, cancel := context.WithCancel(r.stopCtx)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		closeLog(lw)
		return
	}
	r.attached[id] = &attachment{task: task, logs: lw, cancel: cancel}
	r.wg.Add(1)
	r.mu.Unlock()
	go r.monitor(ctx, key, id, task, exitCh)
}

// untrack stops following a task and returns it, or nil if it was not
// followed. The caller deletes the task, which waits for its output to be
// copied, and then closes the log with closeLog.
func (r *Runtime) untrack(id string) *attachment {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.attached[id]
	if a != nil {
		a.cancel()
		delete(r.attached, id)
	}
	return a
}

// monitor waits for one task to exit and wakes its pod's worker. If the
// wait breaks because containerd went away, it waits again, with backoff,
// once containerd is back, and wakes the worker so it can look for what it
// missed.
func (r *Runtime) monitor(ctx context.Context, key, id string, task containerd.Task, exitCh <-chan containerd.ExitStatus) {
	defer r.wg.Done()
	delay := 500 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-exitCh:
			if st.Error() == nil {
				r.log.Debug("task exited", "pod", key, "container", id, "code", st.ExitCode())
				r.onExit(key)
				return
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.clock.After(delay):
			}
			delay = min(2*delay, 30*time.Second)
			ch, err := task.Wait(r.Context(ctx))
			if err == nil {
				exitCh = ch
				r.onExit(key)
				break
			}
			if errdefs.IsNotFound(err) {
				r.onExit(key)
				return
			}
		}
	}
}
