package podspec

import (
	"fmt"
	"math"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// PodInfo is what the downward API tells a container about its pod beyond
// the pod object: its addresses and the node's allocatable resources, which
// stand in for limits a container does not set.
type PodInfo struct {
	IPs         []string
	HostIP      string
	Allocatable v1.ResourceList
}

// FieldValue is the downward API's value of a pod field (fieldRef).
func FieldValue(pod *v1.Pod, path string, info PodInfo) (string, error) {
	if base, key, ok := strings.Cut(path, "['"); ok {
		key = strings.TrimSuffix(key, "']")
		switch base {
		case "metadata.labels":
			return pod.Labels[key], nil
		case "metadata.annotations":
			return pod.Annotations[key], nil
		}
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		if pod.Spec.HostNetwork {
			return info.HostIP, nil
		}
		if len(info.IPs) > 0 {
			return info.IPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		if pod.Spec.HostNetwork {
			return info.HostIP, nil
		}
		return strings.Join(info.IPs, ","), nil
	case "status.hostIP", "status.hostIPs":
		return info.HostIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// formatMap renders labels or annotations as the downward API does:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return b.String()
}

// ResourceValue is the downward API's value of a container resource
// (resourceFieldRef), in units of the divisor rounded up; a limit that is
// not set is the node's allocatable amount.
func ResourceValue(c *v1.Container, r *v1.ResourceFieldSelector, info PodInfo) (string, error) {
	kind, name, _ := strings.Cut(r.Resource, ".")
	list := c.Resources.Requests
	if kind == "limits" {
		list = c.Resources.Limits
	}
	q, ok := list[v1.ResourceName(name)]
	if !ok && kind == "limits" {
		q, ok = info.Allocatable[v1.ResourceName(name)]
	}
	if !ok {
		q = resource.Quantity{}
	}
	divisor := r.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == string(v1.ResourceCPU) {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
}
