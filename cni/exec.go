package cni

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

var _ invoke.Exec = (*timedExec)(nil)

// timedExec runs each plugin with its own time limit inside the caller's
// context: libcni takes one context for a whole list, so without this one
// hung plugin would hold a pod for as long as the caller waits.
type timedExec struct {
	invoke.DefaultExec
	timeout time.Duration
}

func newTimedExec(timeout time.Duration) *timedExec {
	return &timedExec{
		DefaultExec: invoke.DefaultExec{RawExec: &invoke.RawExec{}, PluginDecoder: version.PluginDecoder{}},
		timeout:     timeout,
	}
}

// ExecPlugin runs one plugin, killing it when its time is up or ctx ends.
func (e *timedExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	out, err := e.DefaultExec.ExecPlugin(ctx, pluginPath, stdin, environ)
	if err != nil && ctx.Err() != nil {
		// The plugin was killed: say why rather than "signal: killed".
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s did not finish within %s: %w", filepath.Base(pluginPath), e.timeout, ctx.Err())
		}
		return nil, fmt.Errorf("%s interrupted: %w", filepath.Base(pluginPath), ctx.Err())
	}
	return out, err
}
