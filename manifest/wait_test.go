package manifest

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// waitLimit bounds every wait on something real (a server, fsnotify, the
// source's goroutine): generous, so that a busy machine only makes a test
// slower, never makes it fail.
const waitLimit = time.Minute

// waitFor polls cond until it holds, failing the test if it never does.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s", what, waitLimit)
		}
	}
}

// recv waits for the next update on ch.
func recv(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(waitLimit):
		t.Fatalf("no update within %s", waitLimit)
	}
	return Update{}
}

// newFakeClock is the clock the sources' tests drive.
func newFakeClock() *clocktesting.FakeClock {
	return clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}
