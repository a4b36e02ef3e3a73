package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

// failure is a container, or the sandbox, whose last start failed: the
// reason its status shows and when it may be tried again.
type failure struct {
	reason, message string
	count           int
	at, retryAt     time.Time
	// shown is set once a status has reported the failure: a pull error is
	// ErrImagePull in the status of the sync it happened in, and
	// ImagePullBackOff while the retry waits, as the kubelet shows them.
	shown bool
}

// next records another failure and backs off as the kubelet does for image
// pulls: 10s doubling to 300s.
func (f *failure) next(reason, message string, now time.Time, p BackoffPolicy) *failure {
	if f == nil {
		f = &failure{}
	}
	f.count++
	f.reason, f.message, f.at, f.shown = reason, message, now, false
	delay := p.Initial
	for i := 1; i < f.count && delay < p.Max; i++ {
		delay *= 2
	}
	f.retryAt = now.Add(min(delay, p.Max))
	return f
}

// reasonOf classifies a start error into the status reason a person sees.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, runtime.ErrImageNeverPull):
		return "ErrImageNeverPull"
	case errors.Is(err, runtime.ErrImagePull):
		return "ErrImagePull"
	case errors.Is(err, runtime.ErrCreateConfig), errors.Is(err, podspec.ErrMissingConfig),
		errors.Is(err, volume.ErrHostPathType):
		return "CreateContainerConfigError"
	}
	return "CreateContainerError"
}

// mountsAny reports whether a container mounts one of the volumes.
func mountsAny(c *v1.Container, volumes map[string]bool) bool {
	for _, vm := range c.VolumeMounts {
		if volumes[vm.Name] {
			return true
		}
	}
	return false
}

// gracePeriod is how long a pod's containers get to stop.
func gracePeriod(pod *v1.Pod) time.Duration {
	if pod == nil || pod.Spec.TerminationGracePeriodSeconds == nil {
		return 30 * time.Second
	}
	return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
}

// execute carries out a plan. It reports whether it changed anything, so the
// caller knows to observe again, and returns the first error that stopped it
// (later syncs retry).
func (w *podWorker) execute(ctx context.Context, pod *v1.Pod, st *runtime.PodState, a *podActions) (bool, error) {
	s, key := w.s, w.key
	changed := false
	if a.killPod {
		changed = true
		if err := w.killPod(ctx, pod, st, a.killReason); err != nil {
			return true, err
		}
		st = &runtime.PodState{Key: key}
	}
	if len(a.kill) > 0 {
		changed = true
		var stops []stop
		for _, k := range a.kill {
			s.events.Eventf(events.Normal, "Killing", key, k.container.Name, "Stopping container %s: %s", k.container.Name, k.reason)
			grace := gracePeriod(pod)
			if k.grace != nil {
				grace = time.Duration(*k.grace) * time.Second
			}
			stops = append(stops, stop{k.container, grace})
		}
		if err := w.stopAll(ctx, pod, st, stops); err != nil {
			return true, err
		}
		// Observe the stopped instances once, for the last state of their
		// successors.
		if fresh, err := s.rt.PodState(ctx, key); err == nil {
			st = fresh
		}
	}
	for _, sb := range a.staleSandboxes {
		changed = true
		if err := w.removeSandbox(ctx, sb); err != nil {
			return true, err
		}
	}
	sb := st.Sandbox()
	if a.createSandbox {
		changed = true
		var err error
		if sb, err = w.createSandbox(ctx, pod, a.sandboxAttempt); err != nil {
			return true, err
		}
	}
	// New instances are created before the ones they replace are removed:
	// if podsup dies in between, both are left and the next sync removes
	// the older, so the restart count is never lost.
	remove := a.remove
	blocked := map[string]bool{}
	if sb != nil && pod != nil && !a.stopSandbox {
		if err := s.volumes.Prepare(ctx, pod, s.configObjects(), s.podInfo(sb)); err != nil {
			// Containers that cannot have their volumes wait, with the
			// reason in their status; the others start.
			s.events.Eventf(events.Warning, "FailedMount", key, "", "%v", err)
			failed := volume.Failed(err)
			for _, start := range a.start {
				if mountsAny(start.container, failed) {
					blocked[start.container.Name] = true
					w.failing[start.container.Name] = w.failing[start.container.Name].next("CreateContainerConfigError", err.Error(), s.clock.Now(), s.backoff)
				}
			}
		}
	}
	for _, start := range a.start {
		if blocked[start.container.Name] {
			continue
		}
		changed = true
		if start.replaces != nil {
			for _, c := range st.Containers {
				if c.ID == start.replaces.ID && c.Exit != nil {
					start.last = c.Exit
				}
			}
		}
		if w.startContainer(ctx, pod, sb, start) && start.replaces != nil {
			remove = append(remove, start.replaces)
		}
	}
	for _, c := range remove {
		changed = true
		if err := s.rt.RemoveContainer(ctx, c); err != nil {
			return true, fmt.Errorf("remove %s: %w", c.ID, err)
		}
	}
	if a.stopSandbox && sb != nil {
		changed = true
		if err := s.rt.StopSandbox(ctx, sb); err != nil {
			return true, fmt.Errorf("stop sandbox: %w", err)
		}
		if err := s.net.TearDown(ctx, sb.ID); err != nil {
			return true, fmt.Errorf("tear down network: %w", err)
		}
		w.stopped[sb.ID] = true
	}
	return changed, nil
}

// killPod stops every container of the pod together, within the grace
// period, then removes them and the pod's sandboxes and networks.
func (w *podWorker) killPod(ctx context.Context, pod *v1.Pod, st *runtime.PodState, reason string) error {
	s := w.s
	if pod != nil && len(st.Sandboxes) > 0 {
		s.events.Eventf(events.Normal, "SandboxChanged", w.key, "", "Pod sandbox changed (%s); it will be killed and re-created", reason)
	}
	grace := gracePeriod(pod)
	if pod == nil {
		grace = gracePeriod(w.lastPod)
	}
	var running []stop
	for _, c := range st.Containers {
		if c.State == runtime.StateRunning {
			s.events.Eventf(events.Normal, "Killing", w.key, c.Name, "Stopping container %s", c.Name)
			running = append(running, stop{c, grace})
		}
	}
	if pod == nil {
		pod = w.lastPod
	}
	if err := w.stopAll(ctx, pod, st, running); err != nil {
		return err
	}
	// The pause process goes as soon as the containers have stopped, as
	// the kubelet's StopPodSandbox makes it go, and the containers' tasks
	// go at the same time, as the CRI deletes an exited container's task at
	// once: each container's removal (task, cgroup, record and snapshot)
	// runs beside the pause's stop, not after it. The sandboxes' records and
	// networks go last.
	var wg sync.WaitGroup
	errs := make([]error, len(st.Sandboxes)+len(st.Containers))
	for i, sb := range st.Sandboxes {
		wg.Go(func() {
			if err := s.rt.StopSandbox(ctx, sb); err != nil {
				errs[i] = fmt.Errorf("stop sandbox %s: %w", sb.ID, err)
			}
		})
	}
	for i, c := range st.Containers {
		wg.Go(func() {
			if err := s.rt.RemoveContainer(ctx, c); err != nil {
				errs[len(st.Sandboxes)+i] = fmt.Errorf("remove %s: %w", c.ID, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, sb := range st.Sandboxes {
		if err := w.removeSandbox(ctx, sb); err != nil {
			return err
		}
	}
	return nil
}

// stop is a container to stop within a grace period.
type stop struct {
	c     *runtime.Container
	grace time.Duration
}

// stopAll stops containers in parallel, as the kubelet does, so a pod takes
// at most one grace period to stop; native sidecars stop after the others,
// one by one in the reverse of their order in the pod, in what is left of
// the grace period (at least minGraceAfterPreStop each), so the app
// containers keep their proxies and log shippers to the end. Each
// container's preStop handler runs first, inside its grace period.
func (w *podWorker) stopAll(ctx context.Context, pod *v1.Pod, st *runtime.PodState, stops []stop) error {
	start := w.s.clock.Now()
	isSidecar := map[string]bool{}
	if pod != nil {
		for i := range pod.Spec.InitContainers {
			isSidecar[pod.Spec.InitContainers[i].Name] = podspec.IsSidecar(&pod.Spec.InitContainers[i])
		}
	}
	var apps []stop
	sidecars := map[string]stop{}
	for _, s := range stops {
		if isSidecar[s.c.Name] {
			sidecars[s.c.Name] = s
		} else {
			apps = append(apps, s)
		}
	}
	errs := []error{w.stopTogether(ctx, pod, st, apps)}
	if len(sidecars) == 0 {
		return errs[0]
	}
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		s, ok := sidecars[pod.Spec.InitContainers[i].Name]
		if !ok {
			continue
		}
		s.grace = max(s.grace-w.s.clock.Since(start), minGraceAfterPreStop)
		errs = append(errs, w.stopTogether(ctx, pod, st, []stop{s}))
	}
	return errors.Join(errs...)
}

// stopTogether stops containers in parallel and waits for them all.
func (w *podWorker) stopTogether(ctx context.Context, pod *v1.Pod, st *runtime.PodState, stops []stop) error {
	var wg sync.WaitGroup
	errs := make([]error, len(stops))
	for i, s := range stops {
		wg.Add(1)
		go func() { // owned by this call: it waits for all of them
			defer wg.Done()
			grace := w.preStop(ctx, pod, st, s.c, s.grace)
			if err := w.s.rt.StopContainer(ctx, s.c, grace); err != nil {
				errs[i] = fmt.Errorf("stop %s: %w", s.c.ID, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// minGraceAfterPreStop is the least left for the stop signal after a
// preStop handler, as the kubelet gives it.
const minGraceAfterPreStop = 2 * time.Second

// preStop runs a container's preStop handler, if it has one, within its
// grace period, and returns the grace period left for the stop signal.
func (w *podWorker) preStop(ctx context.Context, pod *v1.Pod, st *runtime.PodState, c *runtime.Container, grace time.Duration) time.Duration {
	spec := containerSpec(pod, c.Name)
	if spec == nil || spec.Lifecycle == nil || spec.Lifecycle.PreStop == nil || grace <= 0 {
		return grace
	}
	start := w.s.clock.Now()
	if err := w.s.hooks.RunHook(ctx, spec, c.ID, podIP(pod, st, w.s.hostIP), spec.Lifecycle.PreStop, grace); err != nil {
		w.s.events.Eventf(events.Warning, "FailedPreStopHook", w.key, c.Name, "PreStopHook failed: %v", err)
	}
	return max(grace-w.s.clock.Since(start), minGraceAfterPreStop)
}

// containerSpec finds a container of the pod by name.
func containerSpec(pod *v1.Pod, name string) *v1.Container {
	if pod == nil {
		return nil
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// podIP is where hooks reach the pod: its IP, or the host's.
func podIP(pod *v1.Pod, st *runtime.PodState, hostIP string) string {
	if pod != nil && pod.Spec.HostNetwork {
		return hostIP
	}
	if sb := st.Sandbox(); sb != nil && len(sb.IPs) > 0 {
		return sb.IPs[0]
	}
	return "127.0.0.1"
}

func (w *podWorker) removeSandbox(ctx context.Context, sb *runtime.Sandbox) error {
	if err := w.s.rt.RemoveSandbox(ctx, sb); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", sb.ID, err)
	}
	if !sb.HostNetwork {
		// Once the sandbox is gone its network goes whole, whatever newer
		// state cancelled the sync: a DEL cut short leaves half a network
		// (the interface gone, the cache and a masquerade rule kept).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := w.s.net.TearDown(ctx, sb.ID); err != nil {
			return fmt.Errorf("tear down network of %s: %w", sb.ID, err)
		}
	}
	delete(w.stopped, sb.ID)
	return nil
}

// createSandbox sets up the pod's network and starts its pause container,
// undoing the network if the sandbox fails. The pause task is created while
// the network's plugins run, in the namespace made for them (about the time
// of the ADD saved on each pod's start); the pause starts once they are done.
func (w *podWorker) createSandbox(ctx context.Context, pod *v1.Pod, attempt int) (_ *runtime.Sandbox, retErr error) {
	s := w.s
	id := runtime.SandboxID(w.key, attempt)
	now := s.clock.Now()
	fail := func(reason string, err error) error {
		w.sandboxFailure = w.sandboxFailure.next(reason, err.Error(), now, s.backoff)
		s.events.Eventf(events.Warning, reason, w.key, "", "%v", err)
		return err
	}
	s.creating.RLock()
	defer s.creating.RUnlock()
	userns, err := s.rt.UserNS(ctx, pod)
	if err != nil {
		return nil, fail("FailedCreatePodSandBox", err)
	}
	cfg := runtime.SandboxConfig{Attempt: attempt, Hash: PodHash(pod), UserNS: userns}
	var setUp *networkSetup
	if !pod.Spec.HostNetwork {
		setUp = w.setUpNetwork(ctx, pod, id, userns)
		defer func() {
			// The setup ends before the sandbox attempt does, whatever
			// failed; a network set up for a sandbox that failed goes.
			if _, err := setUp.wait(); err == nil && retErr != nil {
				cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := s.net.TearDown(cctx, id); err != nil {
					s.log.Warn("cannot undo the pod network", "pod", w.key, "err", err)
				}
			}
		}()
		made, err := setUp.namespaces()
		if err != nil {
			return nil, fail("FailedCreatePodSandBox", err)
		}
		cfg.NetNS, cfg.UserNSPath = made.NetNS, made.UserNS
		cfg.Network = func() ([]string, error) {
			network, err := setUp.wait()
			return network.IPs, err
		}
	}
	sb, err := s.rt.RunSandbox(ctx, pod, cfg)
	if err != nil {
		// A setup that failed removed the namespace the pause task was
		// being made in, which then failed for want of it: the network's
		// error is the cause (a full disk, a plugin that failed).
		if setUp != nil {
			if _, nerr := setUp.wait(); nerr != nil {
				err = nerr
			}
		}
		return nil, fail("FailedCreatePodSandBox", err)
	}
	w.sandboxFailure = nil
	return sb, nil
}

// networkSetup is a pod network's setup under way in a goroutine of its
// own; whoever starts one waits for its end (wait) before returning.
type networkSetup struct {
	made    chan PodNetwork // the namespaces, once they exist
	done    chan struct{}   // closed when SetUp returned
	network PodNetwork
	err     error
}

// setUpNetwork starts setting up the pod's network. SetUp ends with ctx.
func (w *podWorker) setUpNetwork(ctx context.Context, pod *v1.Pod, id string, userns *specs.LinuxIDMapping) *networkSetup {
	n := &networkSetup{made: make(chan PodNetwork, 1), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		n.network, n.err = w.s.net.SetUp(ctx, pod, id, userns, func(made PodNetwork) { n.made <- made })
		if n.err != nil {
			n.err = fmt.Errorf("set up the pod network: %w", n.err)
		}
	}()
	return n
}

// namespaces waits until the pod's namespaces exist, or the setup ended.
func (n *networkSetup) namespaces() (PodNetwork, error) {
	select {
	case made := <-n.made:
		return made, nil
	case <-n.done:
		return n.network, n.err
	}
}

// wait waits for the setup's end.
func (n *networkSetup) wait() (PodNetwork, error) {
	<-n.done
	return n.network, n.err
}

// startContainer starts one instance and reports whether it started,
// recording a failure for the status and the back-off instead of returning
// it: one container that cannot start must not hold back the others.
func (w *podWorker) startContainer(ctx context.Context, pod *v1.Pod, sb *runtime.Sandbox, start startAction) bool {
	s, c := w.s, start.container
	now := s.clock.Now()
	if sb == nil {
		return false
	}
	retry := 0
	if f := w.failing[c.Name]; f != nil {
		retry = f.count
	}
	env, err := podspec.Env(pod, c, s.configObjects(), s.podInfo(sb))
	var mounts []specs.Mount
	if err == nil {
		mounts, err = s.volumes.Mounts(pod, c, env)
		if err != nil {
			err = fmt.Errorf("%w: %v", podspec.ErrMissingConfig, err)
		}
	}
	var started *runtime.Container
	if err == nil {
		started, err = s.rt.StartContainer(ctx, &runtime.ContainerConfig{
			Pod: pod, Container: c, Init: start.init, Sandbox: sb, Hash: ContainerHash(c),
			Attempt: start.attempt, RestartBase: start.restartBase, Retry: retry, Backoff: start.backoff, Last: start.last, Env: env, Mounts: mounts,
			PullSecrets: w.pullSecrets(pod), PullProgress: w.pullEvents(c),
		})
	}
	if err != nil {
		if ctx.Err() != nil {
			return false // superseded or shutting down: not the container's fault
		}
		reason := reasonOf(err)
		if errors.Is(err, runtime.ErrImagePull) {
			s.metrics.ImagePull(err)
		}
		w.failing[c.Name] = w.failing[c.Name].next(reason, err.Error(), now, s.backoff)
		s.events.Eventf(events.Warning, "Failed", w.key, c.Name, "Error: %s: %v", reason, err)
		return false
	}
	delete(w.failing, c.Name)
	if start.last != nil && start.backoff > 0 {
		s.events.Eventf(events.Normal, "Restarted", w.key, c.Name, "Restarted container %s after a back-off of %s", c.Name, start.backoff)
	}
	s.events.Eventf(events.Normal, "Started", w.key, c.Name, "Started container %s (image %s, restart %d)", c.Name, c.Image, start.attempt)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		w.postStart(ctx, pod, sb, c, started)
	}
	return true
}

// postStartTimeout bounds a postStart handler; the kubelet waits for one
// indefinitely.
const postStartTimeout = 2 * time.Minute

// postStart runs the container's postStart handler right after its start;
// if it fails, the container is killed and restarts as its pod's policy says.
func (w *podWorker) postStart(ctx context.Context, pod *v1.Pod, sb *runtime.Sandbox, c *v1.Container, started *runtime.Container) {
	st := &runtime.PodState{Sandboxes: []*runtime.Sandbox{sb}}
	err := w.s.hooks.RunHook(ctx, c, started.ID, podIP(pod, st, w.s.hostIP), c.Lifecycle.PostStart, postStartTimeout)
	if err == nil || ctx.Err() != nil {
		return
	}
	w.s.events.Eventf(events.Warning, "FailedPostStartHook", w.key, c.Name, "PostStartHook failed: %v", err)
	w.s.events.Eventf(events.Normal, "Killing", w.key, c.Name, "Stopping container %s: its postStart hook failed", c.Name)
	if err := w.s.rt.StopContainer(ctx, started, gracePeriod(pod)); err != nil {
		w.s.log.Warn("cannot stop a container whose postStart hook failed", "pod", w.key, "container", c.Name, "err", err)
	}
}

// pullSecrets are the pod's image pull secrets that the manifest sources
// declare. A missing one is reported and the pull goes on without it, as
// the kubelet does.
func (w *podWorker) pullSecrets(pod *v1.Pod) []*v1.Secret {
	if len(pod.Spec.ImagePullSecrets) == 0 {
		return nil
	}
	declared := w.s.configObjects().Secrets
	var found []*v1.Secret
	var missing []string
	for _, ref := range pod.Spec.ImagePullSecrets {
		if sec, ok := declared[manifest.Key(pod.Namespace, ref.Name)]; ok {
			found = append(found, sec)
		} else {
			missing = append(missing, ref.Name)
		}
	}
	if len(missing) > 0 {
		w.s.events.Eventf(events.Warning, "FailedToRetrieveImagePullSecret", w.key, "",
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(missing, ", "))
	}
	return found
}

// pullEvents reports a pull of c's image as the kubelet's Pulling and
// Pulled events, with the bytes done while it runs. It is called from the
// puller's goroutines.
func (w *podWorker) pullEvents(c *v1.Container) func(image.PullProgress) {
	var started atomic.Bool
	return func(p image.PullProgress) {
		switch p.Phase {
		case image.PullRunning:
			if started.CompareAndSwap(false, true) {
				w.s.events.Eventf(events.Normal, "Pulling", w.key, c.Name, "Pulling image %q", c.Image)
			} else {
				w.s.events.Eventf(events.Normal, "Pulling", w.key, c.Name, "Pulling image %q: %s", c.Image, p.Bytes())
			}
		case image.PullDone:
			w.s.metrics.ImagePull(nil)
			w.s.events.Eventf(events.Normal, "Pulled", w.key, c.Name, "Successfully pulled image %q in %s. Image size: %d bytes.",
				c.Image, p.Elapsed.Round(time.Millisecond), p.Total)
		}
	}
}
