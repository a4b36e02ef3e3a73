package mirror

import (
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// apiReference names the first field of a pod that refers to an object of
// the API (a Secret, ConfigMap, service account, claim...), and what kind of
// object, or returns "" when there is none. The NodeRestriction and
// ServiceAccount admission plugins refuse such mirror pods, because a node
// must not reach objects through pods it makes up; podsup runs those pods
// from local files, but can publish no mirror pod for them. It follows
// HasAPIObjectReference of the Kubernetes API, so that podsup refuses before
// asking, with the field path.
func apiReference(pod *v1.Pod) (field, what string) {
	s := &pod.Spec
	if s.ServiceAccountName != "" {
		return "spec.serviceAccountName", "a service account"
	}
	if s.DeprecatedServiceAccount != "" {
		return "spec.serviceAccount", "a service account"
	}
	if len(s.ImagePullSecrets) > 0 {
		return "spec.imagePullSecrets", "a Secret"
	}
	if len(s.ResourceClaims) > 0 {
		return "spec.resourceClaims", "a ResourceClaim"
	}
	for i, v := range s.Volumes {
		if f, w := volumeReference(v.VolumeSource); f != "" {
			return fmt.Sprintf("spec.volumes[%d]%s", i, f), w
		}
	}
	groups := []struct {
		path       string
		containers []v1.Container
	}{{"spec.initContainers", s.InitContainers}, {"spec.containers", s.Containers}}
	for _, g := range groups {
		for i, c := range g.containers {
			if f, w := envReference(c.EnvFrom, c.Env); f != "" {
				return fmt.Sprintf("%s[%d]%s", g.path, i, f), w
			}
		}
	}
	for i, c := range s.EphemeralContainers {
		if f, w := envReference(c.EnvFrom, c.Env); f != "" {
			return fmt.Sprintf("spec.ephemeralContainers[%d]%s", i, f), w
		}
	}
	return "", ""
}

// volumeReference is apiReference for one volume: the suffix of its field
// path, or "". Volume types the API would not know are refused too.
func volumeReference(v v1.VolumeSource) (field, what string) {
	switch {
	case v.Secret != nil:
		return ".secret", "a Secret"
	case v.ConfigMap != nil:
		return ".configMap", "a ConfigMap"
	case v.PersistentVolumeClaim != nil:
		return ".persistentVolumeClaim", "a PersistentVolumeClaim"
	case v.Ephemeral != nil:
		return ".ephemeral", "a PersistentVolumeClaim"
	case v.CSI != nil:
		return ".csi", "a CSIDriver"
	case v.Glusterfs != nil:
		return ".glusterfs", "Endpoints"
	case v.AzureFile != nil:
		return ".azureFile", "a Secret"
	case v.Projected != nil:
		for i, src := range v.Projected.Sources {
			prefix := fmt.Sprintf(".projected.sources[%d]", i)
			switch {
			case src.Secret != nil:
				return prefix + ".secret", "a Secret"
			case src.ConfigMap != nil:
				return prefix + ".configMap", "a ConfigMap"
			case src.ServiceAccountToken != nil:
				return prefix + ".serviceAccountToken", "a service account"
			case src.ClusterTrustBundle != nil:
				return prefix + ".clusterTrustBundle", "a ClusterTrustBundle"
			case src.PodCertificate != nil:
				return prefix + ".podCertificate", "a pod certificate"
			}
		}
	}
	return "", ""
}

// envReference is apiReference for a container's environment.
func envReference(from []v1.EnvFromSource, env []v1.EnvVar) (field, what string) {
	for i, f := range from {
		switch {
		case f.SecretRef != nil:
			return fmt.Sprintf(".envFrom[%d].secretRef", i), "a Secret"
		case f.ConfigMapRef != nil:
			return fmt.Sprintf(".envFrom[%d].configMapRef", i), "a ConfigMap"
		}
	}
	for i, e := range env {
		if e.ValueFrom == nil {
			continue
		}
		switch {
		case e.ValueFrom.SecretKeyRef != nil:
			return fmt.Sprintf(".env[%d].valueFrom.secretKeyRef", i), "a Secret"
		case e.ValueFrom.ConfigMapKeyRef != nil:
			return fmt.Sprintf(".env[%d].valueFrom.configMapKeyRef", i), "a ConfigMap"
		}
	}
	return "", ""
}

// Label namespaces the kubelet, and so podsup, may set on its own Node under
// NodeRestriction, besides the labels of kubeletLabels.
var kubeletLabelNamespaces = []string{"kubelet.kubernetes.io", "node.kubernetes.io"}

// kubeletLabels are the labels in the kubernetes.io and k8s.io namespaces a
// node may set on itself (k8s.io/kubelet/pkg/apis.IsKubeletLabel).
var kubeletLabels = map[string]bool{
	v1.LabelHostname: true, v1.LabelTopologyZone: true, v1.LabelTopologyRegion: true,
	v1.LabelFailureDomainBetaZone: true, v1.LabelFailureDomainBetaRegion: true,
	v1.LabelInstanceType: true, v1.LabelInstanceTypeStable: true, v1.LabelOSStable: true, v1.LabelArchStable: true,
	"beta.kubernetes.io/os": true, "beta.kubernetes.io/arch": true,
}

// CheckNodeLabels refuses the labels a node may not set on itself under
// NodeRestriction, as the kubelet refuses them at start-up: a registration
// with them would be refused by the apiserver again and again.
func CheckNodeLabels(labels map[string]string) error {
	var bad []string
	for key := range labels {
		ns, _, ok := strings.Cut(key, "/")
		if !ok {
			continue
		}
		restricted := ns == v1.LabelNamespaceNodeRestriction || strings.HasSuffix(ns, "."+v1.LabelNamespaceNodeRestriction)
		if restricted || (inNamespace(ns, "kubernetes.io") || inNamespace(ns, "k8s.io")) && !kubeletLabel(key, ns) {
			bad = append(bad, key)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("a node may not set the labels %s on itself (NodeRestriction): in the kubernetes.io and k8s.io namespaces, use %s/ or %s/ labels, or set the others with kubectl as an administrator",
		strings.Join(bad, ", "), kubeletLabelNamespaces[0], kubeletLabelNamespaces[1])
}

func inNamespace(ns, parent string) bool { return ns == parent || strings.HasSuffix(ns, "."+parent) }

func kubeletLabel(key, ns string) bool {
	if kubeletLabels[key] {
		return true
	}
	for _, allowed := range kubeletLabelNamespaces {
		if inNamespace(ns, allowed) {
			return true
		}
	}
	return false
}
