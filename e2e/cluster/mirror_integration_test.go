//go:build integration

package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/internal/testenv/kube"
	"github.com/podsup/podsup/manifest"
)

// joinCluster starts podsup with the kubeconfig of system:node:node1.
func (e *env) joinCluster(c *kube.Cluster, extra ...string) {
	e.t.Helper()
	e.Start(append([]string{"--kubeconfig", c.NodeKubeconfig("node1"), "--node-status-update-frequency", "1s"}, extra...)...)
}

// kubectlLine waits until a line of kubectl's output has every field, and
// returns the output, as a user would see it.
func kubectlLine(t *testing.T, c *kube.Cluster, args []string, fields ...string) string {
	t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(harness.Patience); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err = c.Kubectl(args...)
		for _, line := range strings.Split(out, "\n") {
			if hasFields(line, fields) {
				return out
			}
		}
	}
	t.Fatalf("kubectl %s: no line with %q within %s: %v\n%s", strings.Join(args, " "), fields, harness.Patience, err, out)
	return ""
}

func hasFields(line string, fields []string) bool {
	have := map[string]bool{}
	for _, f := range strings.Fields(line) {
		have[f] = true
	}
	for _, f := range fields {
		if !have[f] {
			return false
		}
	}
	return true
}

// waitMirror waits until the mirror pod of a static pod, as the admin
// sees it, passes check.
func waitMirror(t *testing.T, client kubernetes.Interface, namespace, name string, check func(*v1.Pod) error) *v1.Pod {
	t.Helper()
	var m *v1.Pod
	var err error
	for deadline := time.Now().Add(harness.Patience); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		m, err = client.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			if err = check(m); err == nil {
				return m
			}
		}
	}
	t.Fatalf("mirror pod %s/%s: %v", namespace, name, err)
	return nil
}

func mirrorGone(t *testing.T, client kubernetes.Interface, namespace, name string) {
	t.Helper()
	harness.WaitFor(t, "mirror pod "+name+" deleted", func() bool {
		_, err := client.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

const configMapPod = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
apiVersion: v1
kind: Pod
metadata: {name: configured}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: %s, command: [sh, -c, "while true; do sleep 1; done"], volumeMounts: [{name: s, mountPath: /etc/s}]}
  volumes:
  - {name: s, configMap: {name: settings}}
`

// TestMirrorPods: with a kubeconfig, the Node shows Ready and each static
// pod has a mirror pod, named and annotated as the kubelet's, whose status
// follows the pod's; a deleted mirror pod comes back, and one whose
// manifest is removed goes. A pod that refers to a ConfigMap runs, but has
// no mirror pod, since NodeRestriction forbids it.
func TestMirrorPods(t *testing.T) {
	t.Parallel()
	c := kube.Start(t)
	admin := c.Client()
	e := newEnv(t)
	e.Write("web.yaml", harness.SleeperPod("web", "while true; do sleep 1; done"))
	e.Write("crash.yaml", harness.PodManifest("crash", fmt.Sprintf("  containers:\n  - {name: main, image: %s, command: [sh, -c, 'sleep 1; exit 1']}\n", testenv.BusyboxRef)))
	e.Write("configured.yaml", fmt.Sprintf(configMapPod, testenv.BusyboxRef))
	e.joinCluster(c, "--restart-backoff-initial", "1s")

	nodes := kubectlLine(t, c, []string{"get", "nodes"}, "node1", "Ready")
	pods := kubectlLine(t, c, []string{"get", "pods", "-A"}, "default", "web-node1", "2/2", "Running")
	t.Logf("kubectl get nodes:\n%s\nkubectl get pods -A:\n%s", nodes, pods)

	local := e.WaitPod("web", "running", func(p v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	m := waitMirror(t, admin, "default", "web-node1", func(m *v1.Pod) error { return nil })
	hash := local.Annotations[manifest.AnnotationHash]
	for key, want := range map[string]string{manifest.AnnotationMirror: hash, manifest.AnnotationHash: hash,
		manifest.AnnotationSource: "file", manifest.AnnotationSeen: local.Annotations[manifest.AnnotationSeen]} {
		if got := m.Annotations[key]; got != want || got == "" {
			t.Errorf("mirror pod annotation %s = %q, want %q", key, got, want)
		}
	}
	if hash != string(local.UID) {
		t.Errorf("config.hash %q is not the static pod's UID %q", hash, local.UID)
	}
	if o := m.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].Name != "node1" || m.Spec.NodeName != "node1" {
		t.Errorf("owner %v, node name %q", o, m.Spec.NodeName)
	}

	t.Log("a crashing container's restarts show in the mirror pod")
	waitMirror(t, admin, "default", "crash-node1", func(m *v1.Pod) error {
		if len(m.Status.ContainerStatuses) != 1 || m.Status.ContainerStatuses[0].RestartCount < 2 {
			return fmt.Errorf("container statuses %+v", m.Status.ContainerStatuses)
		}
		return nil
	})

	t.Log("a user deletes a mirror pod: it comes back")
	if _, err := c.Kubectl("delete", "pod", "web-node1", "--wait=false"); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, admin, "default", "web-node1", func(n *v1.Pod) error {
		if n.UID == m.UID || n.DeletionTimestamp != nil || n.Status.Phase != v1.PodRunning {
			return fmt.Errorf("uid %s, phase %s, deleted %v", n.UID, n.Status.Phase, n.DeletionTimestamp)
		}
		return nil
	})
	if p := e.Pod("web"); p.UID != local.UID || harness.ContainerStatus(p, "main").RestartCount != 0 {
		t.Errorf("deleting the mirror pod touched the static pod: uid %s, restarts %d", p.UID, harness.ContainerStatus(p, "main").RestartCount)
	}

	t.Log("a pod that refers to a ConfigMap runs without a mirror pod")
	e.WaitPod("configured", "running", func(p v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if _, err := admin.CoreV1().Pods("default").Get(context.Background(), "configured-node1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("mirror pod of a pod with a configMap volume: %v", err)
	}
	kubectlLine(t, c, []string{"get", "events", "-n", "default"}, "MirrorPodRefused")

	t.Log("the manifest is removed: the mirror pod goes")
	e.Remove("web.yaml")
	mirrorGone(t, admin, "default", "web-node1")
}

// TestMirrorPodsWithAPIServerDown: the apiserver is down while a manifest
// changes; the pod is updated at once all the same, and its mirror pod
// catches up when the apiserver returns.
func TestMirrorPodsWithAPIServerDown(t *testing.T) {
	t.Parallel()
	c := kube.Start(t)
	admin := c.Client()
	e := newEnv(t)
	web := func(version int) string {
		return harness.PodManifest("web", fmt.Sprintf("  containers:\n  - {name: main, image: %s, command: [sh, -c, 'while true; do sleep 1; done'], env: [{name: V, value: '%d'}]}\n", testenv.BusyboxRef, version))
	}
	e.Write("web.yaml", web(1))
	e.joinCluster(c)
	first := waitMirror(t, admin, "default", "web-node1", func(m *v1.Pod) error {
		if m.Status.Phase != v1.PodRunning {
			return fmt.Errorf("phase %s", m.Status.Phase)
		}
		return nil
	})

	c.StopAPIServer()
	start := time.Now()
	e.Write("web.yaml", web(2))
	updated := e.WaitPod("web", "updated", func(p v1.Pod) bool {
		return string(p.UID) != first.Annotations[manifest.AnnotationMirror] && p.Status.Phase == v1.PodRunning &&
			harness.ContainerStatus(p, "main").State.Running != nil
	})
	t.Logf("with the apiserver down, the edited pod ran again %s after the write", time.Since(start).Round(10*time.Millisecond))
	e.WaitHealthy("podsup healthy while the apiserver is down")

	start = time.Now()
	c.StartAPIServer()
	waitMirror(t, admin, "default", "web-node1", func(m *v1.Pod) error {
		if m.Annotations[manifest.AnnotationMirror] != string(updated.UID) || m.Status.Phase != v1.PodRunning || len(m.Status.ContainerStatuses) != 1 {
			return fmt.Errorf("config.mirror %s, phase %s", m.Annotations[manifest.AnnotationMirror], m.Status.Phase)
		}
		return nil
	})
	t.Logf("the mirror pod caught up %s after the apiserver was started", time.Since(start).Round(10*time.Millisecond))
}

// TestMirrorReadyAfterRestart: after podsup restarts, a pod whose readiness
// probe must pass again is NotReady, then Ready; its mirror pod follows to
// Ready every time, as podsup's own /pods does. (A status patch computed
// from the informer's lagging copy once left it NotReady.)
func TestMirrorReadyAfterRestart(t *testing.T) {
	t.Parallel()
	c := kube.Start(t)
	admin := c.Client()
	e := newEnv(t)
	e.Write("web.yaml", harness.PodManifest("web", fmt.Sprintf(`  containers:
  - name: main
    image: %s
    command: [sh, -c, 'touch /tmp/ready; while true; do sleep 1; done']
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      initialDelaySeconds: 2
      periodSeconds: 1
`, testenv.BusyboxRef)))
	e.joinCluster(c)
	ready := func(m *v1.Pod) error {
		for _, cond := range m.Status.Conditions {
			if cond.Type == v1.PodReady && cond.Status == v1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not Ready: %v", m.Status.Conditions)
	}
	waitMirror(t, admin, "default", "web-node1", ready)
	for cycle := range 3 {
		e.Stop()
		e.joinCluster(c)
		e.WaitReady("web")
		t.Logf("restart %d: podsup says Ready", cycle)
		waitMirror(t, admin, "default", "web-node1", ready)
	}
}
