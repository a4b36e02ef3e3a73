package daemon

import (
	"context"
	"fmt"
	"io"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/podspec"
	"github.com/podsup/podsup/runtime"
)

// streams runs the node API's exec, attach and port-forward in the pods
// the supervisor runs.
type streams struct {
	pods func(key string) *v1.Pod
	rt   *runtime.Runtime
}

var _ api.Streams = streams{}

func (s streams) Target(ctx context.Context, pod, container string) error {
	if container == "" {
		_, err := s.sandbox(ctx, pod)
		return err
	}
	_, _, err := s.container(ctx, pod, container)
	return err
}

func (s streams) Exec(ctx context.Context, pod, container string, cmd []string, io runtime.StreamIO) (int, error) {
	id, _, err := s.container(ctx, pod, container)
	if err != nil {
		return -1, err
	}
	return s.rt.ExecStream(ctx, id, cmd, io)
}

func (s streams) Attach(ctx context.Context, pod, container string, io runtime.StreamIO) error {
	id, spec, err := s.container(ctx, pod, container)
	if err != nil {
		return err
	}
	if io.Stdin != nil && !spec.Stdin {
		return fmt.Errorf("container %q of pod %s has no stdin (stdin: false): attach without -i, or set stdin: true", container, pod)
	}
	return s.rt.Attach(ctx, id, io, spec.StdinOnce)
}

func (s streams) PortForward(ctx context.Context, pod string, port int32, stream io.ReadWriteCloser) error {
	sb, err := s.sandbox(ctx, pod)
	if err != nil {
		stream.Close()
		return err
	}
	if err := runtime.PortForward(ctx, sb.NetNS, port, stream); err != nil {
		return fmt.Errorf("forward port %d of pod %s: %w", port, pod, err)
	}
	return nil
}

// sandbox is the running sandbox of a pod the supervisor runs.
func (s streams) sandbox(ctx context.Context, pod string) (*runtime.Sandbox, error) {
	if s.pods(pod) == nil {
		return nil, fmt.Errorf("pod %s: %w", pod, api.ErrNotFound)
	}
	st, err := s.rt.PodState(ctx, pod)
	if err != nil {
		return nil, err
	}
	sb := st.Sandbox()
	if sb == nil || !sb.Ready {
		return nil, fmt.Errorf("pod %s has no running sandbox: %w", pod, api.ErrNotRunning)
	}
	return sb, nil
}

// container is the running instance of a pod's container, and its spec.
func (s streams) container(ctx context.Context, pod, name string) (string, *v1.Container, error) {
	p := s.pods(pod)
	if p == nil {
		return "", nil, fmt.Errorf("pod %s: %w", pod, api.ErrNotFound)
	}
	spec := podspec.ContainerNamed(p, name)
	if spec == nil {
		return "", nil, fmt.Errorf("container %q in pod %s: %w", name, pod, api.ErrNotFound)
	}
	st, err := s.rt.PodState(ctx, pod)
	if err != nil {
		return "", nil, err
	}
	if sb := st.Sandbox(); sb != nil {
		if c := st.Latest(sb.ID, name); c != nil && c.State == runtime.StateRunning {
			return c.ID, spec, nil
		}
	}
	return "", nil, fmt.Errorf("container %q of pod %s is %w", name, pod, api.ErrNotRunning)
}
