package cni

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
	"k8s.io/utils/clock"
)

var _ invoke.Exec = (*timedExec)(nil)

// errPluginTimedOut ends a plugin's context when its own time is up, which
// tells that apart from the caller's context ending.
var errPluginTimedOut = errors.New("plugin time limit reached")

// timedExec runs each plugin with its own time limit inside the caller's
// context: libcni takes one context for a whole list, so without this one
// hung plugin would hold a pod for as long as the caller waits.
type timedExec struct {
	invoke.DefaultExec
	timeout time.Duration
	clock   clock.WithDelayedExecution // times the limit, so tests can run it out
}

func newTimedExec(timeout time.Duration, clk clock.WithDelayedExecution) *timedExec {
	return &timedExec{
		DefaultExec: invoke.DefaultExec{RawExec: &invoke.RawExec{}, PluginDecoder: version.PluginDecoder{}},
		timeout:     timeout,
		clock:       clk,
	}
}

// ExecPlugin runs one plugin, killing it when its time is up or ctx ends.
func (e *timedExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := e.clock.AfterFunc(e.timeout, func() { cancel(errPluginTimedOut) })
	defer timer.Stop()
	out, err := e.DefaultExec.ExecPlugin(ctx, pluginPath, stdin, environ)
	if err != nil && ctx.Err() != nil {
		// The plugin was killed: say why rather than "signal: killed".
		if cause := context.Cause(ctx); !errors.Is(cause, errPluginTimedOut) {
			return nil, fmt.Errorf("%s interrupted: %w", filepath.Base(pluginPath), cause)
		}
		return nil, fmt.Errorf("%s did not finish within %s: %w", filepath.Base(pluginPath), e.timeout, context.DeadlineExceeded)
	}
	return out, err
}
