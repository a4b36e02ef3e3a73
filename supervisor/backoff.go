package supervisor

import (
	"time"

	"github.com/podsup/podsup/runtime"
)

// BackoffPolicy is how long a container that exited waits before it is
// restarted: not at all the first time, then Initial, doubling up to Max; a
// container that ran for ResetAfter starts over. These are the kubelet's
// defaults (10s, 300s, 10 minutes).
type BackoffPolicy struct {
	Initial, Max, ResetAfter time.Duration
}

// DefaultBackoff is the kubelet's crash-loop backoff.
var DefaultBackoff = BackoffPolicy{Initial: 10 * time.Second, Max: 300 * time.Second, ResetAfter: 10 * time.Minute}

// delay is the wait before restarting an exited instance. It is derived from
// the instance's own labels (the delay that preceded it, its restart count
// and how long it ran), so it survives a restart of podsup.
func (p BackoffPolicy) delay(c *runtime.Container) time.Duration {
	var ran time.Duration
	if c.Exit != nil && !c.StartedAt.IsZero() {
		ran = c.Exit.FinishedAt.Sub(c.StartedAt)
	}
	switch {
	case ran >= p.ResetAfter:
		return 0
	case c.Attempt == 0:
		return 0
	case c.Backoff == 0:
		return p.Initial
	}
	return min(2*c.Backoff, p.Max)
}
