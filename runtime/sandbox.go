package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/cgroups"
	"github.com/podsup/podsup/logs"
	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/qos"
	"github.com/podsup/podsup/volume"
)

// cleanupTimeout bounds undo work, which runs on a fresh context because the
// caller's may be what was cancelled.
const cleanupTimeout = 30 * time.Second

// shmSize is the size of a pod's shared /dev/shm, as the CRI plugin makes it.
const shmSize = 64 << 20

// SandboxConfig is what the supervisor decided about a new sandbox.
type SandboxConfig struct {
	Attempt int
	Hash    string
	// NetNS is the pod's network namespace, set up by the CNI layer. Empty
	// for a hostNetwork pod, and for a pod whose namespace runc should make
	// (with only loopback).
	NetNS string
	IPs   []string
	// UserNS maps the IDs of a pod with hostUsers: false (see UserNS), and
	// UserNSPath is the user namespace that owns the network namespace the
	// CNI layer made for it, which the sandbox joins; without one, runc
	// makes both.
	UserNS     *specs.LinuxIDMapping
	UserNSPath string
	// Network, if not nil, waits for the end of the network's setup in
	// NetNS, still under way, and gives the pod's IPs in place of IPs. It
	// is called once the pause task exists, before the pod's files are
	// written and the pause starts; its error is returned as it is. The
	// setup ends with the context RunSandbox is given.
	Network func() ([]string, error)
}

func podKey(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }

// RunSandbox creates and starts a pod's pause container, which holds the
// pod's namespaces, after writing the pod's /etc files. On failure it undoes
// everything it did.
func (r *Runtime) RunSandbox(ctx context.Context, pod *v1.Pod, cfg SandboxConfig) (_ *Sandbox, retErr error) {
	ctx = r.Context(ctx)
	key := podKey(pod)
	id := SandboxID(key, cfg.Attempt)
	img, err := r.PauseImage(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: pause image: %v", ErrSandbox, err)
	}
	dir := r.PodDir(key)
	if err := os.MkdirAll(filepath.Join(dir, "termination"), 0o755); err != nil {
		return nil, fmt.Errorf("%w: pod directory: %v", ErrSandbox, err)
	}
	hostname, err := podspec.KernelHostname(pod, r.dns.ClusterDomain)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSandbox, err)
	}
	if !pod.Spec.HostIPC {
		if err := mountShm(filepath.Join(dir, "shm")); err != nil {
			return nil, fmt.Errorf("%w: /dev/shm: %v", ErrSandbox, err)
		}
	}
	userNS := cfg.UserNS
	cgroupsPath := r.cgroupsPath(key, qos.Class(pod), id)
	if limits, ok := podspec.PodLimits(pod); ok {
		if err := r.cgroups.SetPodLimits(cgroups.Pod{Hash: PodHash(key), Class: qos.Class(pod)}, limits); err != nil {
			return nil, fmt.Errorf("%w: spec.resources: %w", ErrSandbox, err)
		}
	}
	selinux, err := r.node.SandboxLabels(pod)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSandbox, err)
	}
	if r.node.SELinux == nil && podspec.AsksSELinux(pod) {
		r.log.Warn("seLinuxOptions ignored: this host does not enforce SELinux", "pod", key)
	}
	opts := append([]oci.SpecOpts{oci.WithImageConfig(img)}, r.node.SandboxSpec(podspec.PauseContainer{
		Pod: pod, ID: id, NetNS: cfg.NetNS, CgroupsPath: cgroupsPath, Hostname: hostname, UserNS: userNS, UserNSPath: cfg.UserNSPath,
		SELinux: selinux,
	})...)
	labels := map[string]string{
		LabelPodKey: key, LabelPodUID: string(pod.UID), LabelKind: kindSandbox, LabelHash: cfg.Hash,
		LabelAttempt: strconv.Itoa(cfg.Attempt), LabelNetNS: cfg.NetNS, LabelCgroupsPath: cgroupsPath,
	}
	if pod.Spec.HostNetwork {
		labels[LabelHostNetwork] = "true"
	}
	if userNS != nil {
		labels[LabelUserNS] = formatIDMapping(userNS)
	}
	if selinux.Process != "" {
		labels[LabelSELinux] = selinux.Process
	}
	c, err := r.newContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshotView(id, img, remapped(userNS)...),
		containerd.WithContainerLabels(labels), containerd.WithNewSpec(opts...), containerd.WithRuntime(runcRuntime, r.runcOptions()))
	if err != nil {
		return nil, fmt.Errorf("%w: create pause container: %v", ErrSandbox, err)
	}
	defer func() {
		if retErr != nil {
			r.deleteContainer(c)
		}
	}()
	task, err := r.newTask(ctx, c, cio.NullIO)
	if err != nil {
		return nil, fmt.Errorf("%w: create pause task: %v", ErrSandbox, err)
	}
	defer func() {
		if retErr != nil {
			r.deleteTask(task)
		}
	}()
	r.track(key, id, task, nil)
	defer func() {
		if retErr != nil {
			r.untrack(id)
		}
	}()
	ips := cfg.IPs
	if cfg.Network != nil {
		if ips, err = cfg.Network(); err != nil {
			return nil, err
		}
	}
	if err := r.writePodFiles(dir, pod, ips, hostname); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSandbox, err)
	}
	// Labelled before the start, so that a running pause always has its
	// IPs on record (a podsup stopped right after the start finds them).
	if _, err := c.SetLabels(ctx, map[string]string{LabelIPs: strings.Join(ips, ",")}); err != nil {
		return nil, fmt.Errorf("%w: label pause: %v", ErrSandbox, err)
	}
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("%w: start pause: %v", ErrSandbox, err)
	}
	now := r.clock.Now()
	if _, err := c.SetLabels(ctx, map[string]string{LabelStartedAt: formatTime(now)}); err != nil {
		return nil, fmt.Errorf("%w: label pause: %v", ErrSandbox, err)
	}
	return &Sandbox{
		ID: id, PodUID: string(pod.UID), Hash: cfg.Hash, Attempt: cfg.Attempt, Ready: true, CreatedAt: now,
		Pid: task.Pid(), HostNetwork: pod.Spec.HostNetwork, NetNS: cfg.NetNS, IPs: ips, UserNS: userNS, SELinuxLabel: selinux.Process,
	}, nil
}

// newContainer creates a container. A container of the same ID left by an
// attempt that was interrupted (podsup killed between create and start) is
// removed first: IDs are deterministic, so it cannot be anything else.
// (Containers pass over such IDs, see freeContainerID; sandboxes, and
// containers past maxLeftovers, come here.)
func (r *Runtime) newContainer(ctx context.Context, id string, opts ...containerd.NewContainerOpts) (containerd.Container, error) {
	c, err := r.client.NewContainer(ctx, id, opts...)
	if errdefs.IsAlreadyExists(err) {
		// podsup was killed mid-way through an earlier start: either the
		// container record or only its snapshot is left.
		r.log.Info("removing what an interrupted start left", "container", id)
		if old, lerr := r.client.LoadContainer(ctx, id); lerr == nil {
			r.deleteContainer(old)
		}
		if err := r.client.SnapshotService(r.snapshotter).Remove(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			r.log.Warn("cannot remove a leftover snapshot", "snapshot", id, "err", err)
		}
		c, err = r.client.NewContainer(ctx, id, opts...)
	}
	return c, err
}

// newTask creates a container's task. A task of the same ID can outlive
// an interrupted create: containerd stopped, or podsup was killed, after
// the shim registered the task and before the create returned (seen with
// containerd 1.6 after its restarts). Its container may since have been
// deleted and made again, so the task is no one's: it is removed and the
// create tried once more, instead of failing with "already exists" at
// every restart of the container.
func (r *Runtime) newTask(ctx context.Context, c containerd.Container, ioCreate cio.Creator) (containerd.Task, error) {
	task, err := c.NewTask(ctx, ioCreate)
	if !errdefs.IsAlreadyExists(err) {
		return task, err
	}
	r.log.Info("removing the task an interrupted create left", "container", c.ID())
	r.removeTaskByID(c.ID())
	return c.NewTask(ctx, ioCreate)
}

// removeTaskByID kills and deletes a task through the task service itself,
// on a fresh context: the client's Container.Task reads the task's state
// first, which fails for a task whose create never finished.
func (r *Runtime) removeTaskByID(id string) {
	ctx, cancel := context.WithTimeout(r.Context(context.Background()), cleanupTimeout)
	defer cancel()
	ts := r.client.TaskService()
	if _, err := ts.Kill(ctx, &tasks.KillRequest{ContainerID: id, Signal: uint32(unix.SIGKILL), All: true}); err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		r.log.Debug("cannot kill the leftover task", "container", id, "err", errgrpc.ToNative(err))
	}
	if _, err := ts.Delete(ctx, &tasks.DeleteTaskRequest{ContainerID: id}); err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		r.log.Warn("cannot delete the leftover task", "container", id, "err", errgrpc.ToNative(err))
	}
}

// RemoveOrphanSnapshots removes the writable snapshots and views of
// podsup's containers that no container uses: what a podsup killed between
// preparing a snapshot and creating its container leaves. Only snapshots
// older than minAge are touched, so a start in progress keeps its own;
// prefix, when set, limits the sweep to one pod's (its hash and "_").
func (r *Runtime) RemoveOrphanSnapshots(ctx context.Context, prefix string, minAge time.Duration) error {
	ctx = r.Context(ctx)
	recs, err := r.client.ContainerService().List(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	used := map[string]bool{}
	for _, rec := range recs {
		used[rec.SnapshotKey] = true
	}
	sn := r.client.SnapshotService(r.snapshotter)
	var orphans []string
	now := r.clock.Now()
	err = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted && !used[info.Name] && strings.HasPrefix(info.Name, prefix) &&
			isPodsupID(info.Name) && now.Sub(info.Created) >= minAge {
			orphans = append(orphans, info.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	var errs []error
	for _, key := range orphans {
		r.log.Info("removing an orphaned snapshot", "snapshot", key)
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove snapshot %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// isPodsupID reports whether a name has the shape of podsup's container IDs:
// twelve hex digits of a pod hash, then "_".
func isPodsupID(name string) bool {
	if len(name) < 14 || name[12] != '_' {
		return false
	}
	for _, r := range name[:12] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// deleteTask kills and deletes a task, on a fresh context.
func (r *Runtime) deleteTask(task containerd.Task) {
	ctx, cancel := context.WithTimeout(r.Context(context.Background()), cleanupTimeout)
	defer cancel()
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		r.log.Warn("cannot delete task", "container", task.ID(), "err", err)
	}
}

// deleteContainer deletes a container as remove does (its task, its own
// cgroup with any process still in it, its record and snapshot), on a
// fresh context, and logs what it could not do. A start that failed under
// load can leave a process its shim lost in the cgroup (a `runc init` of a
// create cut short), which would hold the cgroup, and the pod's, for good.
// A cgroup that cannot be removed keeps the container record that names
// it, and so stays podsup's to remove: the instance that replaces the
// container, or the next sandbox, removes the record again.
func (r *Runtime) deleteContainer(c containerd.Container) {
	ctx, cancel := context.WithTimeout(r.Context(context.Background()), cleanupTimeout)
	defer cancel()
	if err := r.remove(ctx, c.ID()); err != nil {
		r.log.Warn("cannot delete container", "container", c.ID(), "err", err)
	}
}

// RemoveSandbox kills and deletes a pause container. Its namespaces go with
// it, except a network namespace made by the CNI layer, which that layer
// removes. Removing a sandbox that is gone is success.
func (r *Runtime) RemoveSandbox(ctx context.Context, sb *Sandbox) error {
	return r.remove(ctx, sb.ID)
}

// StopSandbox kills and deletes a pause container's task but keeps the
// container: a finished pod keeps a record of its sandbox (as the kubelet
// keeps a stopped one) so that it stays finished, with its network freed.
func (r *Runtime) StopSandbox(ctx context.Context, sb *Sandbox) error {
	ctx = r.Context(ctx)
	a := r.untrack(sb.ID)
	task := taskOf(a)
	if task == nil {
		var err error
		if task, err = r.loadTask(ctx, sb.ID); err != nil || task == nil {
			return err
		}
	}
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task of %s: %w", sb.ID, err)
	}
	return nil
}

// remove deletes a container and its task, whatever their state.
func (r *Runtime) remove(ctx context.Context, id string) error {
	ctx = r.Context(ctx)
	r.mu.Lock()
	r.removing[id] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.removing, id)
		r.mu.Unlock()
	}()
	a := r.untrack(id)
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		closeAttachment(a)
		return nil
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", id, err)
	}
	task := taskOf(a)
	if task == nil {
		task, err = c.Task(ctx, nil)
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("task of %s: %w", id, err)
		}
	}
	if task != nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task of %s: %w", id, err)
		}
	}
	closeAttachment(a)
	// Before the record that names it goes: a podsup that dies in between
	// finds the container again and finishes.
	labels, err := c.Labels(ctx)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("labels of %s: %w", id, err)
	}
	if err := r.removeContainerCgroup(ctx, labels[LabelCgroupsPath]); err != nil {
		return fmt.Errorf("remove cgroup of %s: %w", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	return nil
}

func taskOf(a *attachment) containerd.Task {
	if a == nil {
		return nil
	}
	return a.task
}

func closeAttachment(a *attachment) {
	if a != nil {
		closeLog(a.logs)
	}
}

// CleanupPod removes what a pod leaves outside containerd once all its
// containers are gone: its logs, its cgroups, leftover snapshots and its
// directory (unmounting its /dev/shm). The directory goes last, and only
// when the rest is gone: a podsup that dies meanwhile finds it at its next
// start (PodDirs) and finishes the job.
func (r *Runtime) CleanupPod(ctx context.Context, key, namespace, name string) error {
	var errs []error
	matches, _ := filepath.Glob(filepath.Join(r.logDir, namespace+"_"+name+"_*"))
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			errs = append(errs, err)
		}
	}
	// A task left without its container would keep the pod's cgroups busy.
	if err := r.RemoveOrphans(ctx, PodHash(key)+"_", 0); err != nil {
		errs = append(errs, err)
	}
	// Its image volumes, unmounted with its volumes.
	if err := r.removeImageVolumes(ctx, func(hash string) bool { return hash != PodHash(key) }); err != nil {
		errs = append(errs, err)
	}
	if err := r.cgroups.RemovePod(ctx, PodHash(key)); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return volume.RemoveAll(r.PodDir(key))
}

// PodDirs lists the pod directories under the root dir by the key recorded
// in each, so that directories of pods that no longer exist can be found.
func (r *Runtime) PodDirs() (map[string]string, error) {
	entries, err := os.ReadDir(r.podsDir())
	if err != nil {
		return nil, err
	}
	dirs := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(r.podsDir(), e.Name(), "key"))
		key := strings.TrimSpace(string(data))
		if err != nil || PodHash(key) != e.Name() {
			key = "" // a directory left before its key file was written
		}
		dirs[filepath.Join(r.podsDir(), e.Name())] = key
	}
	return dirs, nil
}

// RemovePodDir removes a pod directory found by PodDirs whose pod is gone,
// unmounting what is mounted in it (its /dev/shm, in-memory volumes).
func (r *Runtime) RemovePodDir(dir string) error { return volume.RemoveAll(dir) }

// mountShm mounts a pod's shared /dev/shm, a 64 MiB tmpfs.
func mountShm(path string) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	if mounted(path) {
		return nil
	}
	return unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%d", shmSize))
}

// mounted reports whether path is a mount point: its device differs from
// its parent's.
func mounted(path string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(path, &st) != nil || unix.Stat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// logPath is where an instance of a container logs.
func (r *Runtime) logPath(pod *v1.Pod, name string, attempt int) string {
	return logs.FilePath(logs.ContainerDir(r.logDir, pod.Namespace, pod.Name, string(pod.UID), name), attempt)
}
