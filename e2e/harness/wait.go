//go:build integration

package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/internal/testenv"
)

// WaitFor polls cond until it holds, and fails the test if it does not
// within Patience. It returns how long the condition took.
func WaitFor(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	return WaitUntil(t, what, func() string {
		if cond() {
			return ""
		}
		return "never held"
	})
}

// WaitUntil polls check until it says nothing is missing (""), and fails
// the test with what check last said if that does not happen within
// Patience. It returns how long that took.
func WaitUntil(t testing.TB, what string, check func() string) time.Duration {
	t.Helper()
	took, ok := testenv.Poll(Patience, func() bool { return check() == "" })
	if ok {
		return took
	}
	why := check()
	if why == "" {
		return took
	}
	t.Fatalf("not within %s: %s: %s", Patience, what, why)
	return 0
}

// Converged reports whether exactly the named pods are published, each
// Running with every container running and ready, and if not, why.
func Converged(pods []v1.Pod, names map[string]bool) (bool, string) {
	if len(pods) != len(names) {
		return false, fmt.Sprintf("%d pods published, want %d", len(pods), len(names))
	}
	for _, p := range pods {
		if !names[strings.TrimSuffix(p.Name, "-node1")] {
			return false, "unexpected pod " + p.Name
		}
		if p.Status.Phase != v1.PodRunning {
			return false, p.Name + " is " + string(p.Status.Phase)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil || !cs.Ready {
				return false, fmt.Sprintf("%s/%s not running and ready", p.Name, cs.Name)
			}
		}
	}
	return true, ""
}

// WaitConverged waits until exactly the named pods run, and says how long
// it took.
func (e *Env) WaitConverged(names map[string]bool) time.Duration {
	e.t.Helper()
	return e.WaitConvergedWithin(names, Patience)
}

// WaitConvergedWithin is WaitConverged with a limit of its own, for more
// pods than Patience allows for.
func (e *Env) WaitConvergedWithin(names map[string]bool, limit time.Duration) time.Duration {
	e.t.Helper()
	why := "no answer"
	var took time.Duration
	ok := e.pollFor(&took, limit, func() bool {
		pods, err := e.Pods()
		if err != nil {
			why = err.Error()
			return false
		}
		var done bool
		done, why = Converged(pods, names)
		return done
	})
	if !ok {
		e.t.Fatalf("not converged within %s: %s\npodsup log: %s", limit, why, e.ProcLog.Name())
	}
	return took
}

// pollFor checks cond every poll until it holds or limit passes, and
// stores how long it took.
func (e *Env) pollFor(took *time.Duration, limit time.Duration, cond func() bool) bool {
	var ok bool
	*took, ok = testenv.Poll(limit, cond)
	return ok
}

// WaitRestarts waits until a container's restart count reaches n and it
// runs again.
func (e *Env) WaitRestarts(pod, container string, n int32) {
	e.t.Helper()
	e.WaitPod(pod, fmt.Sprintf("%s restarted %d times and running", container, n), func(p v1.Pod) bool {
		cs := ContainerStatus(p, container)
		return cs.RestartCount >= n && cs.State.Running != nil
	})
}

// WaitReplaced waits until a container runs as an instance other than
// oldID (a ContainerID of its status): an edit of its spec was applied. The
// restart count says nothing of edits: a changed static pod counts from 0,
// as the kubelet's.
func (e *Env) WaitReplaced(pod, container, oldID string) v1.Pod {
	e.t.Helper()
	return e.WaitPod(pod, fmt.Sprintf("%s replaced (was %s) and running", container, oldID), func(p v1.Pod) bool {
		cs := ContainerStatus(p, container)
		return cs.ContainerID != "" && cs.ContainerID != oldID && cs.State.Running != nil
	})
}

// WaitPod waits until cond holds for the named pod (without the node
// suffix), and returns the pod as it was then.
func (e *Env) WaitPod(name, what string, cond func(v1.Pod) bool) v1.Pod {
	e.t.Helper()
	var last, found v1.Pod
	var took time.Duration
	ok := e.pollFor(&took, Patience, func() bool {
		pods, _ := e.Pods()
		for _, p := range pods {
			if p.Name == name+"-node1" {
				last = p
				if cond(p) {
					found = p
					return true
				}
			}
		}
		return false
	})
	if !ok {
		e.t.Fatalf("pod %s: not %s within %s; status %+v\npodsup log: %s", name, what, Patience, last.Status, e.ProcLog.Name())
	}
	return found
}

// WaitReady waits until the named pod is Ready.
func (e *Env) WaitReady(name string) v1.Pod {
	e.t.Helper()
	return e.WaitPod(name, "ready", PodReady)
}

// PodStatus reads a pod's status with its probes; empty until podsup
// answers.
func (e *Env) PodStatus(name string) api.PodStatus {
	var st api.PodStatus
	resp, err := http.Get("http://" + e.ReadOnly + "/pods/default/" + name + "-node1/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}
