//go:build integration

package volumes

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/apparmor"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
)

// TestAppArmor: pods ask for AppArmor profiles in the pod's and the
// container's fields and in the deprecated annotation. On a host without
// AppArmor, as the kubelet does, RuntimeDefault and Localhost are refused
// with reason AppArmor (the pod waits, nothing is created), while
// Unconfined and no profile at all run. On a host with AppArmor, the
// default runs under containerd's profile, Unconfined under none, and a
// Localhost profile the kernel lacks stops the container's creation.
func TestAppArmor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctr := func(sc string) string {
		return fmt.Sprintf("  containers:\n  - name: c\n    image: podsup.test/busybox:1\n    command: [sh, -c, %q]\n%s", "echo ran; "+harness.IdleCmd, sc)
	}
	e.Write("aa-default.yaml", harness.PodManifest("aa-default", "  securityContext: {appArmorProfile: {type: RuntimeDefault}}\n"+ctr("")))
	e.Write("aa-local.yaml", strings.Replace(harness.PodManifest("aa-local", ctr("")), "metadata: {name: aa-local}",
		"metadata:\n  name: aa-local\n  annotations: {container.apparmor.security.beta.kubernetes.io/c: localhost/podsup-e2e-missing}", 1))
	e.Write("aa-unconfined.yaml", harness.PodManifest("aa-unconfined", "  securityContext: {appArmorProfile: {type: RuntimeDefault}}\n"+
		ctr("    securityContext: {appArmorProfile: {type: Unconfined}}\n")))
	e.Write("aa-none.yaml", harness.PodManifest("aa-none", ctr("")))
	e.Start()

	profileOf := func(pod string) string {
		id := strings.TrimPrefix(harness.ContainerStatus(e.Pod(pod), "c").ContainerID, "containerd://")
		task, ok := e.Tasks()[id]
		if !ok {
			t.Fatalf("%s: no running task for container %q", pod, id)
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/attr/current", task.PID))
		if err != nil {
			t.Fatalf("%s: %v", pod, err)
		}
		return strings.TrimSpace(strings.TrimRight(string(data), "\x00"))
	}
	e.waitLog("aa-unconfined", "c", "ran")
	e.waitLog("aa-none", "c", "ran")
	if !apparmor.HostSupports() {
		for pod, field := range map[string]string{
			"aa-default": "spec.securityContext.appArmorProfile asks for RuntimeDefault",
			"aa-local":   `metadata.annotations[container.apparmor.security.beta.kubernetes.io/c] asks for the Localhost profile "podsup-e2e-missing"`,
		} {
			p := e.WaitPod(pod, "refused for AppArmor", func(p v1.Pod) bool { return p.Status.Reason == "AppArmor" })
			if p.Status.Phase != v1.PodPending || !strings.HasPrefix(p.Status.Message, "Cannot enforce AppArmor: AppArmor is not enabled on the host") ||
				!strings.Contains(p.Status.Message, field) {
				t.Errorf("%s: %s, %s: %q; want Pending, the kubelet's words and %q", pod, p.Status.Phase, p.Status.Reason, p.Status.Message, field)
			}
			if id := harness.ContainerStatus(p, "c").ContainerID; id != "" {
				t.Errorf("%s: container %s was created for a refused pod", pod, id)
			}
		}
		t.Logf("host without AppArmor: RuntimeDefault and Localhost refused, Unconfined and none run")
		return
	}
	e.waitLog("aa-default", "c", "ran")
	for pod, want := range map[string]string{"aa-default": "cri-containerd.apparmor.d (enforce)", "aa-none": "cri-containerd.apparmor.d (enforce)", "aa-unconfined": "unconfined"} {
		if got := profileOf(pod); got != want {
			t.Errorf("%s runs under AppArmor %q, want %q", pod, got, want)
		}
	}
	e.WaitPod("aa-local", "creation refused", func(p v1.Pod) bool {
		_, msg := harness.Waiting(p, "c")
		return strings.Contains(msg, `AppArmor profile "podsup-e2e-missing" is not loaded on this host`)
	})
}
