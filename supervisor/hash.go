// Package supervisor turns desired pods into running containers and keeps
// them so: one worker per pod observes containerd, plans what to do with a
// pure function, executes the plan, and publishes the pod's status.
package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
)

// ContainerHash is stored with each container; when the desired container's
// hash differs from the running one's, only that container is recreated.
//
// It covers every field of the container as defaulted, except its probes and
// resizePolicy: changing a probe reconfigures the probe, not the container
// (the kubelet restarts the container). It is the JSON encoding of the
// k8s.io/api type, whose optional fields are omitted when empty, so a podsup
// built with a newer API, which knows more fields, hashes an unchanged
// manifest the same way (the kubelet's hash of the whole struct changes with
// every new field, restarting every container on upgrade). TestHashesAreStable
// pins the hashes of fixed manifests.
func ContainerHash(c *v1.Container) string {
	cp := c.DeepCopy()
	cp.LivenessProbe, cp.ReadinessProbe, cp.StartupProbe = nil, nil, nil
	cp.ResizePolicy = nil
	return hashJSON(cp)
}

// PodHash covers the pod-level fields whose change recreates the sandbox and
// every container: the init containers, volumes, host namespaces, process
// namespace sharing, the pod security context, host name and DNS, host
// aliases and the like. Fields that only matter to a scheduler or that podsup
// reads afresh on each use are left out: the app containers (hashed one by
// one), restartPolicy, terminationGracePeriodSeconds, activeDeadlineSeconds,
// priority, tolerations, node selection, service account and image pull
// secrets.
func PodHash(pod *v1.Pod) string {
	s := pod.Spec.DeepCopy()
	s.Containers = nil
	s.RestartPolicy = ""
	s.TerminationGracePeriodSeconds = nil
	s.ActiveDeadlineSeconds = nil
	s.NodeName, s.NodeSelector, s.Affinity, s.SchedulerName = "", nil, nil, ""
	s.Tolerations, s.TopologySpreadConstraints, s.SchedulingGates = nil, nil, nil
	s.Priority, s.PriorityClassName, s.PreemptionPolicy = nil, "", nil
	s.ServiceAccountName, s.DeprecatedServiceAccount, s.AutomountServiceAccountToken = "", "", nil
	s.ImagePullSecrets, s.ReadinessGates, s.Overhead = nil, nil, nil
	s.EnableServiceLinks = nil
	return hashJSON(s)
}

func hashJSON(v any) string {
	js, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // k8s.io/api types always encode
	}
	sum := sha256.Sum256(js)
	return hex.EncodeToString(sum[:8])
}
