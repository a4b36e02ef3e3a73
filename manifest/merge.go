package manifest

import (
	"context"
	"fmt"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Merger combines the snapshots of the configured sources into one desired
// state and reports what changed. When two sources declare the same pod, the
// one configured first wins (file, then http, then api) and the other is
// reported as a problem.
type Merger struct {
	order    []string
	clock    clock.PassiveClock
	latest   map[string]Update // last readable snapshot of each source
	reported map[string]bool
	problems map[string][]Problem
	desired  map[string]*v1.Pod // merged pods by namespace/name
}

// NewMerger returns a merger for the given sources, in order of precedence.
func NewMerger(sources []string, clk clock.PassiveClock) *Merger {
	return &Merger{
		order:    sources,
		clock:    clk,
		latest:   map[string]Update{},
		reported: map[string]bool{},
		problems: map[string][]Problem{},
		desired:  map[string]*v1.Pod{},
	}
}

// Run merges snapshots from in until ctx ends, sending each delta to out.
func (m *Merger) Run(ctx context.Context, in <-chan Update, out chan<- Delta) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-in:
			d := m.Merge(u)
			select {
			case out <- d:
			case <-ctx.Done():
				return
			}
		}
	}
}

// Ready reports whether every configured source has reported once.
func (m *Merger) Ready() bool {
	for _, s := range m.order {
		if !m.reported[s] {
			return false
		}
	}
	return true
}

// Merge takes one source's snapshot and returns what changed in the merged
// desired state. It is Run's step, and is what the tests drive.
func (m *Merger) Merge(u Update) Delta {
	if !u.Stale {
		m.latest[u.Source] = u
		m.reported[u.Source] = true
	}
	m.problems[u.Source] = u.Problems
	ready := m.Ready()

	merged := map[string]*v1.Pod{}
	warnings := map[types.UID][]*Error{}
	var conflicts []Problem
	for _, src := range m.order {
		for uid, ws := range m.latest[src].PodWarnings {
			warnings[uid] = ws
		}
		for _, pod := range m.latest[src].Pods {
			key := PodKey(pod)
			if first, dup := merged[key]; dup {
				conflicts = append(conflicts, Problem{
					Origin: pod.Annotations[AnnotationManifest],
					Err: &Error{Origin: pod.Annotations[AnnotationManifest], Object: "pod " + key, Field: "metadata.name",
						Msg: fmt.Sprintf("already declared by %s; this one is ignored", first.Annotations[AnnotationManifest])},
				})
				continue
			}
			merged[key] = pod
		}
	}

	var changes []Change
	now := m.clock.Now()
	for key, pod := range merged {
		old, known := m.desired[key]
		switch {
		case !known:
			pod = seen(pod, now)
			changes = append(changes, Change{Kind: Add, Pod: pod, Warnings: warnings[pod.UID]})
		case old.UID != pod.UID:
			pod = seen(pod, now)
			changes = append(changes, Change{Kind: Modify, Pod: pod, Warnings: warnings[pod.UID]})
		default:
			pod = old // unchanged: keep the first config.seen
		}
		merged[key] = pod
	}
	for key, old := range m.desired {
		if _, still := merged[key]; still {
			continue
		}
		if !ready {
			merged[key] = old // withheld until every source has spoken
			continue
		}
		changes = append(changes, Change{Kind: Remove, Pod: old})
	}
	m.desired = merged
	sort.Slice(changes, func(i, j int) bool { return PodKey(changes[i].Pod) < PodKey(changes[j].Pod) })

	d := Delta{Changes: changes, SourcesReady: ready, ConfigMaps: map[string]*v1.ConfigMap{}, Secrets: map[string]*v1.Secret{}}
	for _, src := range m.order {
		for _, cm := range m.latest[src].ConfigMaps {
			if _, dup := d.ConfigMaps[Key(cm.Namespace, cm.Name)]; !dup {
				d.ConfigMaps[Key(cm.Namespace, cm.Name)] = cm
			}
		}
		for _, s := range m.latest[src].Secrets {
			if _, dup := d.Secrets[Key(s.Namespace, s.Name)]; !dup {
				d.Secrets[Key(s.Namespace, s.Name)] = s
			}
		}
		d.Problems = append(d.Problems, m.problems[src]...)
	}
	d.Problems = append(d.Problems, conflicts...)
	return d
}

// seen copies pod with the kubelet's config.seen annotation: when this
// version of the pod was first seen.
func seen(pod *v1.Pod, now time.Time) *v1.Pod {
	pod = pod.DeepCopy()
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationSeen] = now.UTC().Format(time.RFC3339Nano)
	return pod
}
