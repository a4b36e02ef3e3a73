//go:build integration

package lifecycle

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/runtime"
)

// TestPodLevelResources: a pod's spec.resources become its own cgroup's
// limits and decide its QoS class; a container without limits of its own
// that takes more memory than the pod may is OOM-killed.
func TestPodLevelResources(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctl := t.TempDir()
	e.Write("res.yaml", harness.PodManifest("res", fmt.Sprintf(`  restartPolicy: Never
  resources: {limits: {cpu: 500m, memory: 32Mi}}
  volumes: [{name: ctl, hostPath: {path: %s}}]
  containers:
  - name: hog
    image: %s
    command: [sh, -c, "until [ -f /ctl/go ]; do sleep 0.2; done; x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"]
    volumeMounts: [{name: ctl, mountPath: /ctl}]
`, ctl, testenv.BusyboxRef)))
	e.Start()
	pod := e.WaitPod("res", "running", func(p v1.Pod) bool { return harness.ContainerStatus(p, "hog").State.Running != nil })
	if pod.Status.QOSClass != v1.PodQOSGuaranteed {
		t.Errorf("QoS class %s, want Guaranteed (pod-level limits, requests defaulted to them)", pod.Status.QOSClass)
	}
	hash := runtime.PodHash("default/res-node1")
	for file, want := range map[string]string{"memory/*/*/pod%s/memory.limit_in_bytes": "33554432", "cpu/*/*/pod%s/cpu.cfs_quota_us": "50000"} {
		found, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", fmt.Sprintf(file, hash)))
		if len(found) != 1 {
			t.Errorf("%s: found %v", file, found)
			continue
		}
		if data, _ := os.ReadFile(found[0]); strings.TrimSpace(string(data)) != want {
			t.Errorf("%s = %q, want %s", found[0], data, want)
		}
	}
	if err := os.WriteFile(filepath.Join(ctl, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pod = e.WaitPod("res", "Failed", func(p v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if term := harness.ContainerStatus(pod, "hog").State.Terminated; term == nil || term.ExitCode != 137 || term.Reason != "OOMKilled" {
		t.Errorf("hog ended %+v, want OOMKilled with 137 at the pod's limit", term)
	}
}
