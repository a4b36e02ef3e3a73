package runtime

import (
	"context"
	"fmt"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsup/podsup/logs"
)

// attachment is a task this process follows: it copies the task's output
// into the container's log and waits for its exit.
type attachment struct {
	task   containerd.Task
	logs   *logs.Writer   // nil for sandboxes
	proc   *specs.Process // the container's process spec, cached for Exec
	cancel context.CancelFunc
}

// newLogWriter opens a container's CRI log.
func (r *Runtime) newLogWriter(path string) (*logs.Writer, error) {
	return logs.NewWriter(path, logs.WithMaxSize(r.logMaxSize), logs.WithMaxFiles(r.logMaxFiles), logs.WithClock(r.clock), logs.WithLogger(r.log))
}

// adopt follows a task that this process did not start: after podsup
// restarts, output that accumulated in the FIFOs while it was away is read
// into the log and the exit monitor is started again.
func (r *Runtime) adopt(ctx context.Context, key string, rec containers.Container) error {
	r.mu.Lock()
	_, done := r.attached[rec.ID]
	closed, removing := r.closed, r.removing[rec.ID]
	r.mu.Unlock()
	if done || closed || removing {
		return nil
	}
	c, err := r.client.LoadContainer(ctx, rec.ID)
	if err != nil {
		return err
	}
	var lw *logs.Writer
	var attach cio.Attach // a sandbox has no output
	if path := rec.Labels[LabelLogPath]; path != "" {
		if lw, err = r.newLogWriter(path); err != nil {
			return err
		}
		attach = logAttach(lw)
	}
	task, err := c.Task(ctx, attach)
	if err != nil {
		closeLog(lw)
		return fmt.Errorf("load task: %w", err)
	}
	r.log.Debug("adopted task", "pod", key, "container", rec.ID)
	r.track(key, rec.ID, task, lw)
	return nil
}

func closeLog(w *logs.Writer) {
	if w != nil {
		w.Close()
	}
}

// track records a followed task and starts its exit monitor, owned by the
// runtime and stopped by untrack or Close. Callers track a new task before
// starting it, so its exit is waited for from the start.
func (r *Runtime) track(key, id string, task containerd.Task, lw *logs.Writer) {
	ctx, cancel := context.WithCancel(r.stopCtx)
	r.mu.Lock()
	if r.closed || r.removing[id] {
		// A task adopted while its container is being removed: the
		// removal untracked it already and will not close what this
		// attachment opened.
		removing := r.removing[id]
		r.mu.Unlock()
		cancel()
		if removing {
			closeTaskIO(task)
		}
		closeLog(lw)
		return
	}
	r.attached[id] = &attachment{task: task, logs: lw, cancel: cancel}
	r.wg.Add(1)
	r.mu.Unlock()
	go r.monitor(ctx, key, id)
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

// release stops following a task that is gone and closes what copied its
// output.
func (r *Runtime) release(id string) {
	a := r.untrack(id)
	if a == nil {
		return
	}
	closeTaskIO(a.task)
	closeLog(a.logs)
}

// closeTaskIO closes the FIFOs a followed task's output comes through, and
// waits for their copies to end.
func closeTaskIO(task containerd.Task) {
	if task == nil {
		return
	}
	if l, ok := task.IO().(*logIO); ok {
		l.Close()
		l.Wait()
	}
}

// outputGrace is how long an exited task's output may take to reach its
// end: the shim closes the FIFOs once the process's pipes are closed, which
// a child left running in the background can hold off.
const outputGrace = 2 * time.Second

// waitOutput waits until an exited task's output is all in its log, or for
// outputGrace, so that its last lines (what `logs --previous` and a
// FallbackToLogsOnError termination message read) are there before the
// exit is reported.
func (r *Runtime) waitOutput(ctx context.Context, id string) {
	r.mu.Lock()
	a := r.attached[id]
	r.mu.Unlock()
	if a == nil || a.task == nil {
		return
	}
	l, ok := a.task.IO().(*logIO)
	if !ok {
		return
	}
	select {
	case <-l.drained:
	case <-ctx.Done():
	case <-r.clock.After(outputGrace):
	}
}

// monitor waits for one task to exit and wakes its pod's worker. It is the
// task's only goroutine: it makes containerd's Wait call itself rather than
// through the client's Task.Wait, which adds one. A task stays in containerd
// until podsup deletes it, so an exit before the call is still reported. If
// the call breaks because containerd went away, it calls again, with
// backoff, and wakes the worker so it can look for what it missed.
func (r *Runtime) monitor(ctx context.Context, key, id string) {
	defer r.wg.Done()
	ctx = r.Context(ctx)
	delay := 500 * time.Millisecond
	for {
		_, err := r.client.TaskService().Wait(ctx, &tasks.WaitRequest{ContainerID: id})
		switch {
		case err == nil:
			r.log.Debug("task exited", "pod", key, "container", id)
			r.waitOutput(ctx, id)
			r.onExit(key)
			return
		case ctx.Err() != nil:
			return
		case errdefs.IsNotFound(errgrpc.ToNative(err)):
			// The task was deleted under this attachment: an observation
			// adopted the stopped task of a container that was being
			// removed, after the removal had untracked it. Its FIFOs were
			// opened after their writer had gone, and nobody else will close
			// them.
			r.release(id)
			r.onExit(key)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
		r.onExit(key)
	}
}
