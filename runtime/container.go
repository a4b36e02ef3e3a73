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
	sec := effectiveSecurity(pod, c)
	user := sec.userString(imgSpec.Config.User)
	if err := sec.verifyNonRoot(user); err != nil {
		return nil, err
	}
	opts, err := r.containerSpecOpts(cfg, img, imgSpec.Config, user, id)
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
	termFile := filepath.Join(r.PodDir(key), "termination", id)
	if c.TerminationMessagePath != "" {
		if err := os.WriteFile(termFile, nil, 0o666); err != nil {
			return nil, fmt.Errorf("%w: termination message file: %v", ErrCreate, err)
		}
		_ = os.Chmod(termFile, 0o666) // writable whatever user the container runs as
		opts = append(opts, withMount(bindMount(termFile, c.TerminationMessagePath, false)))
	}
	class := qos.Class(pod)
	labels := map[string]string{
		LabelPodKey: key, LabelPodUID: string(pod.UID), LabelKind: kindContainer, LabelSandboxID: sb.ID,
		LabelName: c.Name, LabelHash: cfg.Hash, LabelAttempt: strconv.Itoa(cfg.Attempt), LabelBackoff: cfg.Backoff.String(),
		LabelLogPath: logPath, LabelImage: c.Image, LabelStopSignal: imgSpec.Config.StopSignal,
		LabelCgroupsPath: r.cgroupsPath(key, class, id), LabelImageID: imageID(img.Name(), img.Target().Digest.String()),
	}
	if cfg.Init {
		labels[LabelInit] = "true"
	}
	if c.TTY {
		labels[labelTTY] = "true"
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
	container, err := r.newContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id, img),
		containerd.WithContainerLabels(labels), containerd.WithNewSpec(opts...), containerd.WithRuntime(runcRuntime, nil))
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
		LogPath: logPath, StopSignal: imgSpec.Config.StopSignal, Last: cfg.Last,
	}, nil
}

// containerSpecOpts composes the OCI spec of one container.
func (r *Runtime) containerSpecOpts(cfg *ContainerConfig, img containerd.Image, imgCfg ocispec.ImageConfig, user, id string) ([]oci.SpecOpts, error) {
	pod, c, sb := cfg.Pod, cfg.Container, cfg.Sandbox
	key := podKey(pod)
	dir := r.PodDir(key)
	sec := effectiveSecurity(pod, c)
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithEnv(cfg.Env),
		// $(VAR) in command and args refers to the container's own
		// environment only, not the image's, as in Kubernetes.
		withArgs(processArgs(imgCfg, c), cfg.Env),
		withoutRlimits,
		oci.WithCgroup(r.cgroupsPath(key, qos.Class(pod), id)),
		withAnnotation(shimGroupAnnotation, sb.ID),
	}
	if user != "" {
		u, _, _ := cutUser(user)
		opts = append(opts, oci.WithUser(user), oci.WithAdditionalGIDs(u))
	}
	opts = append(opts, withGroups(pod))
	if c.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(c.WorkingDir))
	}
	if c.TTY {
		opts = append(opts, oci.WithTTY)
	}
	opts = append(opts, containerNamespaces(pod, sb)...)
	readOnlyRoot := c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem
	opts = append(opts,
		withMount(bindMount(filepath.Join(dir, "etc-hosts"), "/etc/hosts", false)),
		withMount(bindMount(filepath.Join(dir, "resolv.conf"), "/etc/resolv.conf", readOnlyRoot)),
		withMount(bindMount(filepath.Join(dir, "hostname"), "/etc/hostname", readOnlyRoot)),
	)
	if !pod.Spec.HostIPC {
		opts = append(opts, withMount(bindMount(filepath.Join(dir, "shm"), "/dev/shm", false)))
	}
	propagation := ""
	for _, m := range cfg.Mounts {
		opts = append(opts, withMount(m))
		for _, o := range m.Options {
			if o != "rshared" && o != "rslave" {
				continue
			}
			// As the CRI plugin: a mount can only receive (or send) mounts
			// if its source's mount does.
			if mp, prop := volume.Propagation(m.Source); prop == "private" {
				return nil, fmt.Errorf("%w: mountPropagation of %s needs %s on a shared or slave mount, but it is on %s, which is private (make it shared: mount --make-rshared %s)",
					ErrCreateConfig, m.Destination, m.Source, mp, mp)
			} else if o == "rshared" && prop != "shared" {
				return nil, fmt.Errorf("%w: Bidirectional mountPropagation of %s needs %s on a shared mount, but %s is %s", ErrCreateConfig, m.Destination, m.Source, mp, prop)
			}
			if o == "rshared" || propagation == "" {
				propagation = o
			}
		}
	}
	if propagation != "" {
		opts = append(opts, withRootfsPropagation(propagation))
	}
	secOpts, err := r.securityOpts(sec)
	if err != nil {
		return nil, err
	}
	opts = append(opts, secOpts...)
	return append(opts, r.resourceOpts(pod, c)...), nil
}

func cutUser(user string) (string, string, bool) { return cutAt(user, ':') }

// containerNamespaces join a container to its sandbox's network, IPC and UTS
// namespaces, and to its PID namespace when the pod shares one.
func containerNamespaces(pod *v1.Pod, sb *Sandbox) []oci.SpecOpts {
	proc := func(ns string) string { return fmt.Sprintf("/proc/%d/ns/%s", sb.Pid, ns) }
	var opts []oci.SpecOpts
	switch {
	case pod.Spec.HostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace))
	case sb.NetNS != "":
		opts = append(opts, withNamespace(specs.NetworkNamespace, sb.NetNS), withNamespace(specs.UTSNamespace, proc("uts")))
	default:
		opts = append(opts, withNamespace(specs.NetworkNamespace, proc("net")), withNamespace(specs.UTSNamespace, proc("uts")))
	}
	if pod.Spec.HostIPC {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	} else {
		opts = append(opts, withNamespace(specs.IPCNamespace, proc("ipc")))
	}
	switch {
	case pod.Spec.HostPID:
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		opts = append(opts, withNamespace(specs.PIDNamespace, proc("pid")))
	}
	return opts
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
