package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"

	"github.com/podsup/podsup/runtime"
)

// criKind is the CRI plugin's label for "sandbox" or "container", as
// runtime.LabelKind is podsup's.
const criKind = "io.cri-containerd.kind"

// taskEvent is a start or an exit of an app container's task, as containerd
// timed it: the same clock for both peers.
type taskEvent struct {
	container string
	exit      bool
	at        time.Time
}

// recorder keeps the task events of one containerd namespace: app
// containers' starts and exits, and how many exec processes started.
type recorder struct {
	mu     sync.Mutex
	events []taskEvent
	execs  int
	kinds  map[string]bool // container ID -> is an app container

	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine of record returns
}

// record subscribes to the task events of namespace ns; stop ends it.
func record(client *containerd.Client, ns string) *recorder {
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), ns))
	r := &recorder{kinds: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
	ch, errs := client.Subscribe(ctx, fmt.Sprintf("namespace==%q", ns),
		`topic=="/tasks/start"`, `topic=="/tasks/exit"`, `topic=="/tasks/exec-started"`)
	go func() {
		defer close(r.done)
		for {
			select {
			case env := <-ch:
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					continue
				}
				switch e := v.(type) {
				case *apievents.TaskStart:
					if r.isApp(ctx, client, e.ContainerID) {
						r.add(taskEvent{container: e.ContainerID, at: env.Timestamp})
					}
				case *apievents.TaskExit:
					if e.ID == e.ContainerID && r.isApp(ctx, client, e.ContainerID) {
						r.add(taskEvent{container: e.ContainerID, exit: true, at: e.ExitedAt.AsTime()})
					}
				case *apievents.TaskExecStarted:
					r.mu.Lock()
					r.execs++
					r.mu.Unlock()
				}
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return r
}

// isApp reports whether a container is a pod's app container (not its
// sandbox), by podsup's label or the CRI plugin's; the answer is kept, as
// the container may be gone by the time it exits.
func (r *recorder) isApp(ctx context.Context, client *containerd.Client, id string) bool {
	r.mu.Lock()
	app, ok := r.kinds[id]
	r.mu.Unlock()
	if ok {
		return app
	}
	c, err := client.LoadContainer(ctx, id)
	if err != nil {
		return false
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return false
	}
	app = labels[runtime.LabelKind] == "container" || labels[criKind] == "container"
	r.mu.Lock()
	r.kinds[id] = app
	r.mu.Unlock()
	return app
}

func (r *recorder) add(e taskEvent) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) stop() {
	r.cancel()
	<-r.done
}

// execCount is how many exec processes have started so far.
func (r *recorder) execCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.execs
}

// started reports whether n app containers have started, and when the last
// of the first n did.
func (r *recorder) started(n int) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var last time.Time
	for _, e := range r.events {
		if e.exit || seen[e.container] {
			continue
		}
		seen[e.container] = true
		if e.at.After(last) {
			last = e.at
		}
	}
	return last, len(seen) >= n
}

// restart reports the first exit of an app container and the next app
// container start after it.
func (r *recorder) restart() (exited, next time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		switch {
		case e.exit && exited.IsZero():
			exited = e.at
		case !e.exit && !exited.IsZero() && e.at.After(exited):
			return exited, e.at, true
		}
	}
	return exited, time.Time{}, false
}

// wait polls cond every 20 ms until it holds or limit passes.
func wait(limit time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
