package health

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
)

// RunHook runs a postStart or preStop handler for a running container:
// a command inside it, an HTTP GET to the pod (podIP, the host's for
// hostNetwork pods), or a sleep, all within timeout. A failure says what
// failed, with the handler's output.
func (m *Manager) RunHook(ctx context.Context, c *v1.Container, containerID, podIP string, h *v1.LifecycleHandler, timeout time.Duration) error {
	if h == nil {
		return nil
	}
	t := target{host: podIP, containerID: trimID(containerID), container: c}
	switch {
	case h.Sleep != nil:
		d := time.Duration(h.Sleep.Seconds) * time.Second
		if d > timeout {
			d = timeout
		}
		select {
		case <-m.clock.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case h.Exec != nil, h.HTTPGet != nil:
		result, output := m.prober.run(ctx, &v1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet}, t, timeout)
		if result == Success {
			return nil
		}
		return fmt.Errorf("%s", output)
	}
	return errors.New("the handler has no action")
}
