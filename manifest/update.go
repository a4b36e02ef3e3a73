package manifest

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Update is a full snapshot of what one source declares now. Sources send one
// whenever what they declare changes; the merger compares snapshots, so a
// source never has to say what changed.
type Update struct {
	Source     string // SourceFile, SourceHTTP or SourceAPI
	Pods       []*v1.Pod
	ConfigMaps []*v1.ConfigMap
	Secrets    []*v1.Secret
	// Stale means the source could not read its desired state (the URL is
	// down, say). Pods, ConfigMaps and Secrets are then unset and the
	// source's last snapshot stands; only Problems are new.
	Stale bool
	// Problems are manifests that could not be used, such as an invalid file
	// whose last good objects are still in the snapshot.
	Problems []Problem
	// Warnings are problems that did not stop a manifest from being used.
	Warnings []*Error
	// PodWarnings are the warnings about each of Pods, by its UID.
	PodWarnings map[types.UID][]*Error
}

// addWarnings adds the warnings of a manifest's objects to the snapshot.
func (u *Update) addWarnings(o *Objects) {
	u.Warnings = append(u.Warnings, o.Warnings...)
	for uid, ws := range o.PodWarnings {
		if u.PodWarnings == nil {
			u.PodWarnings = map[types.UID][]*Error{}
		}
		u.PodWarnings[uid] = append(u.PodWarnings[uid], ws...)
	}
}

// Problem is a manifest that could not be used, and why.
type Problem struct {
	Origin string
	Err    error
}

// ChangeKind says what happened to a desired pod.
type ChangeKind int

// The kinds of change the merger reports.
const (
	Add ChangeKind = iota
	Modify
	Remove
)

func (k ChangeKind) String() string {
	switch k {
	case Add:
		return "add"
	case Modify:
		return "update"
	case Remove:
		return "remove"
	}
	return "unknown"
}

// Change is one pod added, updated or removed from the desired state. For a
// removal, Pod is the pod as it was last desired.
type Change struct {
	Kind ChangeKind
	Pod  *v1.Pod
	// Warnings are what the manifest's reader warned of about this version
	// of the pod, on Add and Modify: they are news once per version.
	Warnings []*Error
}

// Delta is what the merger hands the supervisor after each snapshot.
type Delta struct {
	Changes []Change
	// SourcesReady is true once every configured source has reported at
	// least once. Until then nothing is removed, and pods found running that
	// no source declares yet must be left alone.
	SourcesReady bool
	// ConfigMaps and Secrets are the merged sets from every source, keyed by
	// namespace/name; pods take their configuration from them.
	ConfigMaps map[string]*v1.ConfigMap
	Secrets    map[string]*v1.Secret
	// Problems are every source's current problems, for status reporting.
	Problems []Problem
}

// Key is how podsup names a pod everywhere: namespace/name.
func Key(namespace, name string) string { return namespace + "/" + name }

// PodKey is Key for a pod.
func PodKey(pod *v1.Pod) string { return Key(pod.Namespace, pod.Name) }
