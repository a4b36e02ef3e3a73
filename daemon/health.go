package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/podsup/podsup/health"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/supervisor"
)

// execer runs exec probes and hooks through the runtime.
type execer struct{ rt *runtime.Runtime }

var _ health.Execer = execer{}

func (e execer) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, []byte, error) {
	code, out, err := e.rt.Exec(ctx, id, cmd, timeout)
	if errors.Is(err, runtime.ErrExecTimeout) {
		err = health.ErrTimeout
	}
	return code, out, err
}

// condemned turns the health manager's verdicts into the supervisor's.
func condemned(m *health.Manager) func(string) map[string]supervisor.Condemned {
	return func(key string) map[string]supervisor.Condemned {
		verdicts := m.Condemned(key)
		if len(verdicts) == 0 {
			return nil
		}
		out := make(map[string]supervisor.Condemned, len(verdicts))
		for id, v := range verdicts {
			out[id] = supervisor.Condemned{Reason: v.Reason, GracePeriodSeconds: v.GracePeriodSeconds}
		}
		return out
	}
}
