//go:build integration

package harness

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/internal/testenv"
)

// IdleCmd is a container command that idles and stops at once on SIGTERM.
// It waits on one long sleep rather than looping over short ones: the
// suite runs a hundred such containers at a time, and their loops' fork
// and exec of sleep took a tenth of the machine (the wait builtin returns
// as soon as the trapped signal comes).
const IdleCmd = "trap 'kill $! 2>/dev/null; exit 0' TERM; sleep 2147483647 & wait"

// SleeperPod is a pod of two busybox containers: main runs cmd, side idles.
func SleeperPod(name, cmd string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: main, image: %s, command: [sh, -c, %q]}
  - {name: side, image: %s, command: [sh, -c, %q]}
`, name, testenv.BusyboxRef, cmd, testenv.BusyboxRef, IdleCmd)
}

// PodManifest is a pod named name with a grace period of 1 s and the given
// spec YAML (indented by two spaces).
func PodManifest(name, body string) string { return PodManifestGrace(name, 1, body) }

// ScriptPod is a pod of one busybox container, c, running script in sh.
// podFields are lines of the pod's spec (indented by two spaces, each
// ending in a newline), ctrFields of the container's (by four); either may
// be empty.
func ScriptPod(name, podFields, ctrFields, script string) string {
	return PodManifest(name, fmt.Sprintf("%s  containers:\n  - name: c\n    image: %s\n    command: [sh, -c, %q]\n%s", podFields, testenv.BusyboxRef, script, ctrFields))
}

// PodManifestGrace is PodManifest with a grace period of grace seconds.
func PodManifestGrace(name string, grace int, body string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  terminationGracePeriodSeconds: %d\n%s", name, grace, body)
}

// ContainerStatus returns a pod's container status by name, of an app or
// an init container.
func ContainerStatus(p v1.Pod, name string) v1.ContainerStatus {
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if cs.Name == name {
			return cs
		}
	}
	return v1.ContainerStatus{}
}

// Waiting is a container's waiting reason and message, or empty.
func Waiting(p v1.Pod, name string) (string, string) {
	if w := ContainerStatus(p, name).State.Waiting; w != nil {
		return w.Reason, w.Message
	}
	return "", ""
}

// IsRunning reports whether the pod runs with every container running.
func IsRunning(p v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

// PodReady reports the pod's Ready condition.
func PodReady(p v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// Evicted reports whether the pod was evicted.
func Evicted(p v1.Pod) bool {
	return p.Status.Phase == v1.PodFailed && p.Status.Reason == "Evicted"
}

// ContainerIDs lists the IDs of the pod's containers, comma-separated: it
// changes when any container is replaced.
func ContainerIDs(p v1.Pod) string {
	var ids []string
	for _, cs := range p.Status.ContainerStatuses {
		ids = append(ids, cs.ContainerID)
	}
	return strings.Join(ids, ",")
}
