// Package apitest holds fakes of what the API reports on, and an output a
// test can wait on, for the tests of the API and of its command-line
// client.
package apitest

import (
	"sync"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/health"
)

// Pods is a supervisor's pod list that a test may change.
type Pods struct {
	mu   sync.Mutex
	pods []*v1.Pod
}

// NewPods returns a list of pods.
func NewPods(pods ...*v1.Pod) *Pods { return &Pods{pods: pods} }

// Pods returns the pods.
func (f *Pods) Pods() []*v1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*v1.Pod(nil), f.pods...)
}

// Pod returns the pod of a namespace/name key, or nil.
func (f *Pods) Pod(key string) *v1.Pod {
	for _, p := range f.Pods() {
		if p.Namespace+"/"+p.Name == key {
			return p
		}
	}
	return nil
}

// Set replaces the pods.
func (f *Pods) Set(pods ...*v1.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = pods
}

// Probes reports probe results by pod key.
type Probes map[string][]health.ProbeStatus

// Probes returns a pod's probe results.
func (f Probes) Probes(key string) []health.ProbeStatus { return f[key] }
