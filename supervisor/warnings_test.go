package supervisor

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/manifest"
)

// TestManifestWarningsAreEvents: what the manifest's reader warned of about
// a pod is a Warning event of the pod, once per version of it: not again
// on the syncs that follow, nor on a delta that does not change the pod.
func TestManifestWarningsAreEvents(t *testing.T) {
	u := newUnit(t, clocktesting.NewFakeClock(t0))
	warning := &manifest.Error{Origin: "/etc/podsup/web.yaml", Object: "pod web", Field: "spec.activeDeadlineSeconds",
		Msg: "not honoured by podsup yet: the pod runs on past its deadline"}
	recorded := func() (n int, last events.Event) {
		for _, e := range u.sup.Events().List(testKey) {
			if e.Reason == "ManifestWarning" {
				n += e.Count
				last = e
			}
		}
		return n, last
	}

	pod := testPod(v1.RestartPolicyAlways, []string{"app"})
	u.deltas <- manifest.Delta{Changes: []manifest.Change{{Kind: manifest.Add, Pod: pod, Warnings: []*manifest.Error{warning}}}}
	u.deltas <- manifest.Delta{} // a snapshot that changes nothing; the channel is unbuffered, so the Add is applied
	u.waitUntil("the first start", func() bool { return u.rt.started("app", 0) != nil })
	u.syncAgain()
	n, e := recorded()
	want := "/etc/podsup/web.yaml: pod web: spec.activeDeadlineSeconds: not honoured by podsup yet: the pod runs on past its deadline"
	if n != 1 || e.Type != events.Warning || e.Message != want {
		t.Fatalf("%d ManifestWarning events, the last %s %q; want one Warning %q", n, e.Type, e.Message, want)
	}

	next := pod.DeepCopy()
	next.UID = types.UID("second-version")
	u.deltas <- manifest.Delta{Changes: []manifest.Change{{Kind: manifest.Modify, Pod: next, Warnings: []*manifest.Error{warning}}}}
	u.deltas <- manifest.Delta{}
	if n, _ := recorded(); n != 2 {
		t.Errorf("%d ManifestWarning events after a new version of the pod, want 2", n)
	}
}
