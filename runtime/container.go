package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/signal"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/logs"
	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/qos"
	"github.com/podsup/podsup/volume"
)

// killTimeout bounds the wait for a container to die after SIGKILL.
const killTimeout = 10 * time.Second

// ContainerConfig is what the supervisor decided about a container instance.
type ContainerConfig struct {
	Pod       *v1.Pod
	Container *v1.Container
	Init      bool
	Sandbox   *Sandbox
	Hash      string
	Attempt   int // restart count
	// RestartBase is the attempt at which this version of the pod first
	// started the container.
	RestartBase int
	// Retry counts the failed starts of this attempt before this one. Each
	// try has an ID of its own: a create that failed half way can leave
	// state under its ID that containerd keeps until it restarts (a shim's
	// bundle directory), and would refuse every later create of that ID.
	Retry   int
	Backoff time.Duration // the delay that preceded this start
	Last    *Termination  // how the previous instance ended
	// Env is the container's resolved environment, KEY=VALUE, in order;
	// the image's environment comes first and is overridden.
	Env []string
	// Mounts are the container's volumes, ready to bind.
	Mounts []specs.Mount
	// PullSecrets are the pod's image pull secrets that exist.
	PullSecrets []*v1.Secret
	// PullProgress, if set, hears how a pull of the image goes.
	PullProgress func(image.PullProgress)
}

// StartContainer pulls the image as the pull policy says, creates the
// container in the sandbox's namespaces and starts it, with its output going
// to its CRI log. On failure it undoes everything; the error wraps
// ErrImagePull, ErrImageNeverPull, ErrCreateConfig or ErrCreate.
func (r *Runtime) StartContainer(ctx context.Context, cfg *ContainerConfig) (_ *Container, retErr error) {
	ctx = r.Context(ctx)
	pod, c, sb := cfg.Pod, cfg.Container, cfg.Sandbox
	key := podKey(pod)
	id := r.freeContainerID(ctx, key, c.Name, sb.Attempt, cfg.Attempt, cfg.Retry)
	img, err := r.EnsureImage(ctx, c.Image, c.ImagePullPolicy, image.WithPullSecrets(cfg.PullSecrets), image.WithProgress(cfg.PullProgress))
	if err != nil {
		return nil, err
	}
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: read image config of %s: %v", ErrCreate, c.Image, err)
	}
	termFile := ""
	if c.TerminationMessagePath != "" {
		termFile = filepath.Join(r.PodDir(key), "termination", id)
	}
	class := qos.Class(pod)
	cgroupsPath := r.cgroupsPath(key, class, id)
	opts, err := r.containerSpecOpts(cfg, imgSpec.Config, cgroupsPath, termFile)
	if err != nil {
		return nil, err
	}
	logPath := r.logPath(pod, c.Name, cfg.Attempt)
	// Only this instance's log and the previous one's are kept, as the
	// kubelet keeps one dead container per container: a crash loop must
	// not fill the disk with a log per restart.
	if err := logs.Prune(filepath.Dir(logPath), cfg.Attempt-1); err != nil {
		r.log.Warn("cannot remove old logs", "pod", key, "container", c.Name, "err", err)
	}
	if termFile != "" {
		if err := os.WriteFile(termFile, nil, 0o666); err != nil {
			return nil, fmt.Errorf("%w: termination message file: %v", ErrCreate, err)
		}
		_ = os.Chmod(termFile, 0o666) // writable whatever user the container runs as
	}
	// The container's own stop signal (lifecycle.stopSignal, Kubernetes
	// 1.33), else the image's.
	stopSignal := imgSpec.Config.StopSignal
	if c.Lifecycle != nil && c.Lifecycle.StopSignal != nil {
		stopSignal = string(*c.Lifecycle.StopSignal)
	}
	labels := map[string]string{
		LabelPodKey: key, LabelPodUID: string(pod.UID), LabelKind: kindContainer, LabelSandboxID: sb.ID,
		LabelName: c.Name, LabelHash: cfg.Hash, LabelAttempt: strconv.Itoa(cfg.Attempt), LabelRestartBase: strconv.Itoa(cfg.RestartBase), LabelBackoff: cfg.Backoff.String(),
		LabelLogPath: logPath, LabelImage: c.Image, LabelStopSignal: stopSignal,
		LabelCgroupsPath: cgroupsPath, LabelImageID: imageID(img.Name(), img.Target().Digest.String()),
	}
	if cfg.Init {
		labels[LabelInit] = "true"
	}
	if c.TTY {
		labels[labelTTY] = "true"
	}
	if c.TerminationMessagePolicy == v1.TerminationMessageFallbackToLogsOnError {
		labels[labelLogFallback] = "true"
	}
	for k, v := range lastLabels(cfg.Last) {
		labels[k] = v
	}
	lw, err := r.newLogWriter(logPath)
	if err != nil {
		return nil, fmt.Errorf("%w: open log: %v", ErrCreate, err)
	}
	defer func() {
		if retErr != nil {
			closeLog(lw)
		}
	}()
	container, err := r.newContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id, img, remapped(sb.UserNS)...),
		containerd.WithContainerLabels(labels), containerd.WithNewSpec(append(opts, labelUser)...), containerd.WithRuntime(runcRuntime, r.runcOptions()))
	if err != nil {
		return nil, fmt.Errorf("%w: create container: %v", ErrCreate, err)
	}
	defer func() {
		if retErr != nil {
			r.deleteContainer(container)
		}
	}()
	task, err := r.newTask(ctx, container, logCreator(r.fifoDir(), lw, c.TTY, c.Stdin))
	if err != nil {
		return nil, fmt.Errorf("%w: create task: %v", ErrCreate, err)
	}
	defer func() {
		if retErr != nil {
			r.untrack(id)
			r.deleteTask(task)
		}
	}()
	r.track(key, id, task, lw)
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("%w: start: %v", ErrCreate, err)
	}
	started := r.clock.Now()
	if _, err := container.SetLabels(ctx, map[string]string{LabelStartedAt: formatTime(started)}); err != nil {
		return nil, fmt.Errorf("%w: label started container: %v", ErrCreate, err)
	}
	return &Container{
		ID: id, SandboxID: sb.ID, Name: c.Name, Init: cfg.Init, Hash: cfg.Hash, Attempt: cfg.Attempt, State: StateRunning,
		Pid: task.Pid(), Backoff: cfg.Backoff, CreatedAt: started, StartedAt: started, Image: c.Image, ImageRef: imageID(img.Name(), img.Target().Digest.String()),
		LogPath: logPath, StopSignal: stopSignal, Last: cfg.Last,
	}, nil
}

// containerSpecOpts composes the OCI spec of one container (podspec), once
// the host's mounts were checked for the propagation its volumes ask for.
func (r *Runtime) containerSpecOpts(cfg *ContainerConfig, img ocispec.ImageConfig, cgroupsPath, termFile string) ([]oci.SpecOpts, error) {
	if err := checkPropagation(cfg.Mounts); err != nil {
		return nil, err
	}
	key := podKey(cfg.Pod)
	dir := r.PodDir(key)
	opts, err := r.node.ContainerSpec(podspec.Container{
		Pod: cfg.Pod, Container: cfg.Container,
		Sandbox: podspec.Sandbox{ID: cfg.Sandbox.ID, Pid: cfg.Sandbox.Pid, NetNS: cfg.Sandbox.NetNS, UserNS: cfg.Sandbox.UserNS, SELinuxLabel: cfg.Sandbox.SELinuxLabel},
		Image:   img, Env: cfg.Env, Mounts: cfg.Mounts,
		Files: podspec.PodFiles{
			Hosts: filepath.Join(dir, "etc-hosts"), ResolvConf: filepath.Join(dir, "resolv.conf"),
			Hostname: filepath.Join(dir, "hostname"), Shm: filepath.Join(dir, "shm"),
		},
		CgroupsPath:     cgroupsPath,
		TerminationFile: termFile,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCreateConfig, err)
	}
	return opts, nil
}

// checkPropagation refuses, as the CRI plugin does, a volume that asks to
// receive (or send) mounts from a host path whose mount does not.
func checkPropagation(mounts []specs.Mount) error {
	for _, m := range mounts {
		for _, o := range m.Options {
			if o != "rshared" && o != "rslave" {
				continue
			}
			if mp, prop := volume.Propagation(m.Source); prop == "private" {
				return fmt.Errorf("%w: mountPropagation of %s needs %s on a shared or slave mount, but it is on %s, which is private (make it shared: mount --make-rshared %s)",
					ErrCreateConfig, m.Destination, m.Source, mp, mp)
			} else if o == "rshared" && prop != "shared" {
				return fmt.Errorf("%w: Bidirectional mountPropagation of %s needs %s on a shared mount, but %s is %s", ErrCreateConfig, m.Destination, m.Source, mp, prop)
			}
		}
	}
	return nil
}

// StopContainer stops a running container: its stop signal (the image's, or
// SIGTERM), then SIGKILL to every process of it once grace has passed. A
// container that is not running is already stopped.
func (r *Runtime) StopContainer(ctx context.Context, c *Container, grace time.Duration) error {
	ctx = r.Context(ctx)
	task, err := r.loadTask(ctx, c.ID)
	if err != nil || task == nil {
		return err
	}
	st, err := task.Status(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("status of %s: %w", c.ID, err)
	}
	if st.Status == containerd.Stopped {
		return nil
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait for %s: %w", c.ID, err)
	}
	sig := syscall.SIGTERM
	if c.StopSignal != "" {
		if s, err := signal.ParseSignal(c.StopSignal); err == nil {
			sig = s
		}
	}
	if grace > 0 {
		if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("signal %s: %w", c.ID, err)
		}
		select {
		case <-exitCh:
			return nil
		case <-r.clock.After(grace):
			r.log.Info("grace period over; killing", "container", c.ID, "grace", grace)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill %s: %w", c.ID, err)
	}
	select {
	case <-exitCh:
		return nil
	case <-r.clock.After(killTimeout):
		return fmt.Errorf("%s did not die within %s of SIGKILL", c.ID, killTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loadTask returns the task this process follows, or loads it without
// attaching; nil when there is none.
func (r *Runtime) loadTask(ctx context.Context, id string) (containerd.Task, error) {
	r.mu.Lock()
	a := r.attached[id]
	r.mu.Unlock()
	if a != nil {
		return a.task, nil
	}
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("task of %s: %w", id, err)
	}
	return task, nil
}

// maxLeftovers bounds how many IDs freeContainerID passes over.
const maxLeftovers = 5

// freeContainerID is the ID of a new instance: the one its attempt and
// retry count give, or, where an interrupted start left a container record
// of that ID, the next retry's. Reusing the ID of a task
// create that was cut short races containerd 2.3: the shim connection of
// the old task closes late, and containerd's cleanup of a dead shim then
// deletes whatever task has that ID, the new one included (seen in the
// crash loop test: the restarted container vanished a second after its
// start). The leftover itself goes with the instance that replaces it, or
// with the sweep of orphans. A snapshot left alone (podsup killed between
// preparing it and creating the container; no task ever ran on it) does
// not take the ID: newContainer removes it and creates the container.
func (r *Runtime) freeContainerID(ctx context.Context, key, name string, sandboxAttempt, attempt, retry int) string {
	id := ContainerID(key, name, sandboxAttempt, attempt, retry)
	for n := 1; n <= maxLeftovers && r.recordExists(ctx, id); n++ {
		id = ContainerID(key, name, sandboxAttempt, attempt, retry+n)
	}
	return id
}

// recordExists reports whether containerd holds a container record of the
// ID (or cannot say).
func (r *Runtime) recordExists(ctx context.Context, id string) bool {
	_, err := r.client.ContainerService().Get(ctx, id)
	return !errdefs.IsNotFound(err)
}

// RemoveContainer deletes a container instance, its task, snapshot and
// termination message; its log stays for `logs --previous` until pruned.
// Removing a container that is gone is success.
func (r *Runtime) RemoveContainer(ctx context.Context, c *Container) error {
	if err := r.remove(ctx, c.ID); err != nil {
		return err
	}
	// The ID starts with the pod's hash, which names the pod's directory.
	hash, _, _ := cutAt(c.ID, '_')
	if err := os.Remove(filepath.Join(r.podsDir(), hash, "termination", c.ID)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove termination message of %s: %w", c.ID, err)
	}
	return nil
}

func cutAt(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
