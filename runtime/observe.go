package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/podsup/podsup/logs"
)

// maxTerminationMessage bounds a termination message, as the kubelet does.
const maxTerminationMessage = 4096

// The kubelet's bounds of a termination message taken from the log
// (MaxContainerTerminationMessageLogLines and ...LogLength).
const (
	maxTerminationLogLines = 80
	maxTerminationLogBytes = 2048
)

// PodState reads what containerd holds for one pod. Tasks that this process
// does not follow yet (after podsup restarted) are adopted: their output is
// copied to their logs again and their exit is monitored.
func (r *Runtime) PodState(ctx context.Context, key string) (*PodState, error) {
	ctx = r.Context(ctx)
	recs, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q==%q", LabelPodKey, key))
	if err != nil {
		return nil, fmt.Errorf("list containers of %s: %w", key, err)
	}
	return r.podState(ctx, key, recs)
}

// ListPods reads the state of every pod podsup has containers for, by key.
func (r *Runtime) ListPods(ctx context.Context) (map[string]*PodState, error) {
	ctx = r.Context(ctx)
	recs, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q", LabelPodKey))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	byKey := map[string][]containers.Container{}
	for _, rec := range recs {
		key := rec.Labels[LabelPodKey]
		byKey[key] = append(byKey[key], rec)
	}
	pods := map[string]*PodState{}
	for key, recs := range byKey {
		st, err := r.podState(ctx, key, recs)
		if err != nil {
			return nil, err
		}
		pods[key] = st
	}
	return pods, nil
}

func (r *Runtime) podState(ctx context.Context, key string, recs []containers.Container) (*PodState, error) {
	st := &PodState{Key: key}
	for _, rec := range recs {
		proc, err := r.taskProcess(ctx, rec.ID)
		if err != nil {
			return nil, err
		}
		if proc != nil && (proc.Status == tasktypes.Status_RUNNING || proc.Status == tasktypes.Status_STOPPED || proc.Status == tasktypes.Status_PAUSED) {
			if err := r.adopt(ctx, key, rec); err != nil {
				r.log.Warn("cannot attach to task", "pod", key, "container", rec.ID, "err", err)
			}
		}
		switch rec.Labels[LabelKind] {
		case kindSandbox:
			st.Sandboxes = append(st.Sandboxes, sandboxFrom(rec, proc))
		case kindContainer:
			st.Containers = append(st.Containers, r.containerFrom(rec, proc))
		}
	}
	sort.Slice(st.Sandboxes, func(i, j int) bool { return st.Sandboxes[i].Attempt > st.Sandboxes[j].Attempt })
	sort.Slice(st.Containers, func(i, j int) bool {
		a, b := st.Containers[i], st.Containers[j]
		if a.SandboxID != b.SandboxID {
			return a.SandboxID > b.SandboxID
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return newer(a, b)
	})
	return st, nil
}

// taskProcess returns a container's task, or nil if it has none.
func (r *Runtime) taskProcess(ctx context.Context, id string) (*tasktypes.Process, error) {
	resp, err := r.client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: id})
	if err != nil {
		if errdefs.IsNotFound(errgrpc.ToNative(err)) {
			return nil, nil
		}
		return nil, fmt.Errorf("task of %s: %w", id, errgrpc.ToNative(err))
	}
	return resp.Process, nil
}

func sandboxFrom(rec containers.Container, proc *tasktypes.Process) *Sandbox {
	l := rec.Labels
	sb := &Sandbox{
		ID: rec.ID, PodUID: l[LabelPodUID], Hash: l[LabelHash], Attempt: atoi(l[LabelAttempt]),
		CreatedAt: rec.CreatedAt, HostNetwork: l[LabelHostNetwork] == "true", NetNS: l[LabelNetNS], IPs: splitIPs(l[LabelIPs]),
		UserNS: parseIDMapping(l[LabelUserNS]), SELinuxLabel: l[LabelSELinux],
	}
	if proc != nil && proc.Status == tasktypes.Status_RUNNING {
		sb.Ready, sb.Pid = true, proc.Pid
	}
	// A sandbox whose network namespace is gone (torn down by a removal
	// that then failed, or deleted by hand) can hold no container: new
	// ones would fail to join it forever. It is not ready, so the pod gets
	// a new one.
	if sb.Ready && !sb.HostNetwork && sb.NetNS != "" {
		if _, err := os.Lstat(sb.NetNS); errors.Is(err, fs.ErrNotExist) {
			sb.Ready = false
		}
	}
	return sb
}

func (r *Runtime) containerFrom(rec containers.Container, proc *tasktypes.Process) *Container {
	l := rec.Labels
	backoff, _ := time.ParseDuration(l[LabelBackoff])
	c := &Container{
		ID: rec.ID, SandboxID: l[LabelSandboxID], Name: l[LabelName], Init: l[LabelInit] == "true",
		Hash: l[LabelHash], Attempt: atoi(l[LabelAttempt]), Backoff: backoff, PodUID: l[LabelPodUID], RestartBase: atoi(l[LabelRestartBase]),
		CreatedAt: rec.CreatedAt, StartedAt: parseTime(l[LabelStartedAt]),
		Image: l[LabelImage], ImageRef: cmp.Or(l[LabelImageID], rec.Image), LogPath: l[LabelLogPath], StopSignal: l[LabelStopSignal],
		Last: parseLast(l), User: parseUser(l[LabelUser]),
	}
	switch {
	case proc == nil && c.StartedAt.IsZero():
		c.State = StateCreated
	case proc == nil:
		// It ran, but its task is gone (containerd lost it, or the machine
		// rebooted): how it ended is unknown, as the kubelet reports it.
		c.State = StateUnknown
		c.Exit = &Termination{ExitCode: 137, Reason: "ContainerStatusUnknown", Message: "the container could not be located when the pod was observed", StartedAt: c.StartedAt, FinishedAt: rec.UpdatedAt, ID: c.ID}
	case proc.Status == tasktypes.Status_CREATED:
		c.State = StateCreated
	case proc.Status == tasktypes.Status_STOPPED:
		c.State = StateExited
		c.Exit = r.termination(c, l, proc)
	default:
		c.State, c.Pid = StateRunning, proc.Pid
		if c.StartedAt.IsZero() {
			c.StartedAt = rec.CreatedAt // killed between start and label
		}
	}
	return c
}

// termination describes how an exited instance ended: Completed for exit
// 0, OOMKilled when its cgroup saw the OOM killer, Error otherwise, with the
// message the container wrote to its termination message file.
func (r *Runtime) termination(c *Container, labels map[string]string, proc *tasktypes.Process) *Termination {
	t := &Termination{ExitCode: int32(proc.ExitStatus), StartedAt: c.StartedAt, ID: c.ID}
	if proc.ExitedAt != nil {
		t.FinishedAt = protobuf.FromTimestamp(proc.ExitedAt)
	}
	switch {
	case r.cgroups.OOMKilled(labels[LabelCgroupsPath]):
		t.Reason = "OOMKilled"
	case t.ExitCode == 0:
		t.Reason = "Completed"
	default:
		t.Reason = "Error"
	}
	t.Message = readBounded(r.terminationFile(c.ID, labels), maxTerminationMessage)
	if t.Message == "" && t.ExitCode != 0 && labels[labelLogFallback] == "true" {
		// FallbackToLogsOnError: the end of the instance's own log file,
		// as the kubelet reads it (not its rotated files), once its last
		// output is in it: a sync may see the exit before the monitor
		// has waited for the output.
		r.waitOutput(r.stopCtx, c.ID)
		msg, err := logs.LastLines(labels[LabelLogPath], maxTerminationLogLines, maxTerminationLogBytes)
		if err != nil {
			r.log.Warn("cannot read a failed container's log for its termination message", "container", c.ID, "err", err)
		}
		t.Message = msg
	}
	return t
}

func (r *Runtime) terminationFile(id string, labels map[string]string) string {
	return filepath.Join(r.PodDir(labels[LabelPodKey]), "termination", id)
}

// readBounded reads at most n bytes of a file; a missing file is empty.
func readBounded(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	data, _ := io.ReadAll(io.LimitReader(f, n))
	return strings.TrimRight(string(data), "\n")
}
