//go:build integration

package network

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
)

// TestSetHostnameAsFQDN: with setHostnameAsFQDN and a subdomain, uname -n
// and /etc/hostname in the container are the pod's FQDN, as the kubelet
// computes it with --cluster-domain; a pod whose FQDN is longer than the
// kernel's 64 characters gets no sandbox and its status says why.
func TestSetHostnameAsFQDN(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pod := func(name, hostname string) string {
		return harness.ScriptPod(name, "  hostname: "+hostname+"\n  subdomain: backend\n  setHostnameAsFQDN: true\n", "",
			`echo "names $(hostname) $(cat /etc/hostname)"; `+harness.IdleCmd)
	}
	long := strings.Repeat("a", 40)
	e.Write("fqdn.yaml", pod("fqdn", "db"))
	e.Write("long.yaml", pod("long", long))
	e.Start("--cluster-domain", "example.test")
	want := "names db.backend.default.svc.example.test db.backend.default.svc.example.test"
	harness.WaitUntil(t, "the container to print its host names", func() string {
		if got := e.LogTail("fqdn", "c"); !strings.HasSuffix(got, want) {
			return fmt.Sprintf("last log line %q, want it to end with %q", got, want)
		}
		return ""
	})
	p := e.WaitPod("long", "refused for its long FQDN", func(p v1.Pod) bool { return strings.Contains(p.Status.Message, "too long") })
	fqdn := long + ".backend.default.svc.example.test"
	if p.Status.Phase != v1.PodPending || p.Status.Reason != "FailedCreatePodSandBox" ||
		!strings.Contains(p.Status.Message, fmt.Sprintf("spec.setHostnameAsFQDN: the pod's FQDN %s is too long (64 characters is the max, %d characters requested)", fqdn, len(fqdn))) {
		t.Errorf("long FQDN: %s, %s: %q", p.Status.Phase, p.Status.Reason, p.Status.Message)
	}
}
