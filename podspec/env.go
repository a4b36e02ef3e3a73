package podspec

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/manifest"
)

// ErrMissingConfig is a reference to a ConfigMap, Secret or key that does
// not exist and is not optional: the container waits with
// CreateContainerConfigError until it appears.
var ErrMissingConfig = errors.New("missing configuration")

// Objects are the ConfigMaps and Secrets the manifest sources declare, by
// namespace/name.
type Objects struct {
	ConfigMaps map[string]*v1.ConfigMap
	Secrets    map[string]*v1.Secret
}

// Env builds a container's environment as the kubelet does: envFrom
// sources first, then env in order, each value expanding $(NAME) references
// to the variables before it. Values are never logged: they may be secrets.
func Env(pod *v1.Pod, c *v1.Container, cfg Objects, info PodInfo) ([]string, error) {
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
				return nil, fmt.Errorf("%w: envFrom[%d]: configmap %q not found in namespace %q", ErrMissingConfig, i, ef.ConfigMapRef.Name, pod.Namespace)
			}
			for _, k := range slices.Sorted(maps.Keys(cm.Data)) {
				set(ef.Prefix+k, cm.Data[k])
			}
		case ef.SecretRef != nil:
			s, ok := cfg.Secrets[manifest.Key(pod.Namespace, ef.SecretRef.Name)]
			if !ok {
				if optional(ef.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("%w: envFrom[%d]: secret %q not found in namespace %q", ErrMissingConfig, i, ef.SecretRef.Name, pod.Namespace)
			}
			for _, k := range slices.Sorted(maps.Keys(s.Data)) {
				set(ef.Prefix+k, string(s.Data[k]))
			}
		}
	}
	lookup := func(name string) (string, bool) { v, ok := vals[name]; return v, ok }
	for i, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, Expand(e.Value, lookup))
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
func valueFrom(pod *v1.Pod, c *v1.Container, vf *v1.EnvVarSource, cfg Objects, info PodInfo) (string, bool, error) {
	switch {
	case vf.FieldRef != nil:
		v, err := FieldValue(pod, vf.FieldRef.FieldPath, info)
		return v, err == nil, err
	case vf.ResourceFieldRef != nil:
		v, err := ResourceValue(c, vf.ResourceFieldRef, info)
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
			return "", false, fmt.Errorf("%w: configmap %q not found in namespace %q", ErrMissingConfig, r.Name, pod.Namespace)
		}
		return "", false, fmt.Errorf("%w: key %q not found in configmap %q", ErrMissingConfig, r.Key, r.Name)
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
			return "", false, fmt.Errorf("%w: secret %q not found in namespace %q", ErrMissingConfig, r.Name, pod.Namespace)
		}
		return "", false, fmt.Errorf("%w: key %q not found in secret %q", ErrMissingConfig, r.Key, r.Name)
	}
	return "", false, fmt.Errorf("no value source")
}
