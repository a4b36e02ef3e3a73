package testenv

import "time"

// A poll checks its condition at once, then after 50 ms, then at twice the
// interval each time up to 250 ms: a condition that holds soon is seen
// soon, and the many long waits of a parallel suite do not keep podsup and
// containerd busy answering them (at a fixed 50 ms, they took a good part
// of the suite's CPU).
const (
	minPoll = 50 * time.Millisecond
	maxPoll = 250 * time.Millisecond
)

// Poll checks cond until it holds or limit has passed, for waits on real
// components (the kernel, containerd, podsup): it reports whether cond
// held, and how long that took. Tests pass a generous limit, so that a
// busy machine is slow, not failing.
func Poll(limit time.Duration, cond func() bool) (took time.Duration, ok bool) {
	start := time.Now()
	var next time.Duration
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > limit {
			return time.Since(start), false
		}
		next = min(max(2*next, minPoll), maxPoll)
		time.Sleep(next)
	}
}
