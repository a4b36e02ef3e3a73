package apitest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// WaitLimit bounds a wait for what a real component does: long enough for
// a machine with both cores busy, so a test that waits it out has failed.
const WaitLimit = time.Minute

// Output is a writer a test can wait on, as a command's or a stream's
// output.
type Output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // size 1: a write is never missed
}

// NewOutput returns an empty Output.
func NewOutput() *Output { return &Output{changed: make(chan struct{}, 1)} }

// Write keeps p.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// String returns what was written.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// WaitFor waits until the output holds text, and fails the test if it
// does not within WaitLimit.
func (o *Output) WaitFor(t testing.TB, text string) {
	t.Helper()
	timeout := time.NewTimer(WaitLimit)
	defer timeout.Stop()
	for !strings.Contains(o.String(), text) {
		select {
		case <-o.changed:
		case <-timeout.C:
			t.Fatalf("output never showed %q; it is:\n%s", text, o.String())
		}
	}
}

// Await waits until ch is closed or sends, and fails the test, saying what
// it waited for, if that does not happen within WaitLimit.
func Await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timeout := time.NewTimer(WaitLimit)
	defer timeout.Stop()
	select {
	case v := <-ch:
		return v
	case <-timeout.C:
	}
	t.Fatalf("waited %s for %s", WaitLimit, what)
	var zero T
	return zero
}
