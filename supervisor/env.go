package supervisor

import (
	"errors"
	"fmt"
	"math"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/runtime"
)

// errMissingConfig is a reference to a ConfigMap, Secret or key that does
// not exist; the container waits with CreateContainerConfigError.
var errMissingConfig = errors.New("missing configuration")

// ConfigObjects are the ConfigMaps and Secrets declared by the manifest
// sources, by namespace/name.
type ConfigObjects struct {
	ConfigMaps map[string]*v1.ConfigMap
	Secrets    map[string]*v1.Secret
}

// podInfo is what the downward API can tell a container about its pod.
type podInfo struct {
	ips    []string
	hostIP string
	// allocatable stands in for limits a container does not set, as the
	// node's allocatable resources do for the kubelet.
	allocatable v1.ResourceList
}

// resolveEnv builds a container's environment as the kubelet does: envFrom
// sources first, then env in order, each value expanding $(NAME) references
// to the variables before it. Values are never logged: they may be secrets.
func resolveEnv(pod *v1.Pod, c *v1.Container, cfg ConfigObjects, info podInfo) ([]string, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for i, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := cfg.ConfigMaps[manifest.Key(pod.Namespace, ef.ConfigMapRef.Name)]
			if !ok {
				if optional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("%w: envFrom[%d]: configmap %q not found in namespace %q", errMissingConfig, i, ef.ConfigMapRef.Name, pod.Namespace)
			}
			for _, k := range sortedKeys(cm.Data) {
				set(ef.Prefix+k, cm.Data[k])
			}
		case ef.SecretRef != nil:
			s, ok := cfg.Secrets[manifest.Key(pod.Namespace, ef.SecretRef.Name)]
			if !ok {
				if optional(ef.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("%w: envFrom[%d]: secret %q not found in namespace %q", errMissingConfig, i, ef.SecretRef.Name, pod.Namespace)
			}
			for _, k := range sortedKeys(s.Data) {
				set(ef.Prefix+k, string(s.Data[k]))
			}
		}
	}
	lookup := func(name string) (string, bool) { v, ok := vals[name]; return v, ok }
	for i, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, runtime.Expand(e.Value, lookup))
			continue
		}
		v, ok, err := valueFrom(pod, c, e.ValueFrom, cfg, info)
		if err != nil {
			return nil, fmt.Errorf("env[%d] %s: %w", i, e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env, nil
}

func optional(b *bool) bool { return b != nil && *b }

// valueFrom resolves one env source; ok is false for a missing optional key.
func valueFrom(pod *v1.Pod, c *v1.Container, vf *v1.EnvVarSource, cfg ConfigObjects, info podInfo) (string, bool, error) {
	switch {
	case vf.FieldRef != nil:
		v, err := fieldValue(pod, vf.FieldRef.FieldPath, info)
		return v, err == nil, err
	case vf.ResourceFieldRef != nil:
		v, err := resourceValue(c, vf.ResourceFieldRef, info)
		return v, err == nil, err
	case vf.ConfigMapKeyRef != nil:
		r := vf.ConfigMapKeyRef
		cm, found := cfg.ConfigMaps[manifest.Key(pod.Namespace, r.Name)]
		if found {
			if v, ok := cm.Data[r.Key]; ok {
				return v, true, nil
			}
			if v, ok := cm.BinaryData[r.Key]; ok {
				return string(v), true, nil
			}
		}
		if optional(r.Optional) {
			return "", false, nil
		}
		if !found {
			return "", false, fmt.Errorf("%w: configmap %q not found in namespace %q", errMissingConfig, r.Name, pod.Namespace)
		}
		return "", false, fmt.Errorf("%w: key %q not found in configmap %q", errMissingConfig, r.Key, r.Name)
	case vf.SecretKeyRef != nil:
		r := vf.SecretKeyRef
		s, found := cfg.Secrets[manifest.Key(pod.Namespace, r.Name)]
		if found {
			if v, ok := s.Data[r.Key]; ok {
				return string(v), true, nil
			}
		}
		if optional(r.Optional) {
			return "", false, nil
		}
		if !found {
			return "", false, fmt.Errorf("%w: secret %q not found in namespace %q", errMissingConfig, r.Name, pod.Namespace)
		}
		return "", false, fmt.Errorf("%w: key %q not found in secret %q", errMissingConfig, r.Key, r.Name)
	}
	return "", false, fmt.Errorf("no value source")
}

// fieldValue is the downward API's value of a pod field.
func fieldValue(pod *v1.Pod, path string, info podInfo) (string, error) {
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
			return info.hostIP, nil
		}
		if len(info.ips) > 0 {
			return info.ips[0], nil
		}
		return "", nil
	case "status.podIPs":
		if pod.Spec.HostNetwork {
			return info.hostIP, nil
		}
		return strings.Join(info.ips, ","), nil
	case "status.hostIP", "status.hostIPs":
		return info.hostIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// formatMap renders labels or annotations as the downward API does:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "%s=%q\n", k, m[k])
	}
	return b.String()
}

// resourceValue is the downward API's value of a container resource, in
// units of the divisor rounded up; a limit that is not set is the node's
// allocatable amount.
func resourceValue(c *v1.Container, r *v1.ResourceFieldSelector, info podInfo) (string, error) {
	kind, name, _ := strings.Cut(r.Resource, ".")
	list := c.Resources.Requests
	if kind == "limits" {
		list = c.Resources.Limits
	}
	q, ok := list[v1.ResourceName(name)]
	if !ok && kind == "limits" {
		q, ok = info.allocatable[v1.ResourceName(name)]
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
