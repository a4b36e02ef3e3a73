package volume

import (
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/podspec"
)

func mode(item *int32, def *int32) int32 {
	if item != nil {
		return *item
	}
	if def != nil {
		return *def
	}
	return 0o644
}

func optional(b *bool) bool { return b != nil && *b }

// keyPayload selects keys of a ConfigMap's or Secret's data: all of them, or
// the listed items, each under its path.
func keyPayload(kind, name string, data map[string][]byte, items []v1.KeyToPath, defMode *int32, opt bool) (map[string]File, error) {
	payload := map[string]File{}
	if len(items) == 0 {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			payload[k] = File{Data: data[k], Mode: mode(nil, defMode)}
		}
		return payload, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if opt {
				continue
			}
			return nil, fmt.Errorf("%w: %s %q has no key %q", podspec.ErrMissingConfig, kind, name, it.Key)
		}
		payload[it.Path] = File{Data: v, Mode: mode(it.Mode, defMode)}
	}
	return payload, nil
}

func configMapData(cm *v1.ConfigMap) map[string][]byte {
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return data
}

func configMapPayload(pod *v1.Pod, src *v1.ConfigMapVolumeSource, defMode *int32, cfg podspec.Objects) (map[string]File, error) {
	cm, ok := cfg.ConfigMaps[pod.Namespace+"/"+src.Name]
	if !ok {
		if optional(src.Optional) {
			return map[string]File{}, nil
		}
		return nil, fmt.Errorf("%w: configmap %q not found in namespace %q", podspec.ErrMissingConfig, src.Name, pod.Namespace)
	}
	return keyPayload("configmap", src.Name, configMapData(cm), src.Items, defMode, optional(src.Optional))
}

func secretPayload(pod *v1.Pod, name string, items []v1.KeyToPath, opt *bool, defMode *int32, cfg podspec.Objects) (map[string]File, error) {
	s, ok := cfg.Secrets[pod.Namespace+"/"+name]
	if !ok {
		if optional(opt) {
			return map[string]File{}, nil
		}
		return nil, fmt.Errorf("%w: secret %q not found in namespace %q", podspec.ErrMissingConfig, name, pod.Namespace)
	}
	return keyPayload("secret", name, s.Data, items, defMode, optional(opt))
}

func downwardPayload(pod *v1.Pod, items []v1.DownwardAPIVolumeFile, defMode *int32, info podspec.PodInfo) (map[string]File, error) {
	payload := map[string]File{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = podspec.FieldValue(pod, it.FieldRef.FieldPath, info)
		case it.ResourceFieldRef != nil:
			c := podspec.ContainerNamed(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("downward API item %q: no container %q", it.Path, it.ResourceFieldRef.ContainerName)
			}
			v, err = podspec.ResourceValue(c, it.ResourceFieldRef, info)
		}
		if err != nil {
			return nil, fmt.Errorf("downward API item %q: %w", it.Path, err)
		}
		payload[it.Path] = File{Data: []byte(v), Mode: mode(it.Mode, defMode)}
	}
	return payload, nil
}

func projectedPayload(pod *v1.Pod, src *v1.ProjectedVolumeSource, cfg podspec.Objects, info podspec.PodInfo) (map[string]File, error) {
	payload := map[string]File{}
	for i, s := range src.Sources {
		var part map[string]File
		var err error
		switch {
		case s.ConfigMap != nil:
			part, err = configMapPayload(pod, &v1.ConfigMapVolumeSource{LocalObjectReference: s.ConfigMap.LocalObjectReference,
				Items: s.ConfigMap.Items, Optional: s.ConfigMap.Optional}, src.DefaultMode, cfg)
		case s.Secret != nil:
			part, err = secretPayload(pod, s.Secret.Name, s.Secret.Items, s.Secret.Optional, src.DefaultMode, cfg)
		case s.DownwardAPI != nil:
			part, err = downwardPayload(pod, s.DownwardAPI.Items, src.DefaultMode, info)
		}
		if err != nil {
			return nil, fmt.Errorf("source %d: %w", i, err)
		}
		for p, f := range part {
			if _, dup := payload[p]; dup {
				return nil, fmt.Errorf("source %d: path %q is projected twice", i, p)
			}
			payload[p] = f
		}
	}
	return payload, nil
}

// payload is what a projected kind of volume holds now; ok is false for
// the kinds whose content is not projected (hostPath, emptyDir).
func payload(pod *v1.Pod, vs *v1.VolumeSource, cfg podspec.Objects, info podspec.PodInfo) (map[string]File, bool, error) {
	switch {
	case vs.ConfigMap != nil:
		p, err := configMapPayload(pod, vs.ConfigMap, vs.ConfigMap.DefaultMode, cfg)
		return p, true, err
	case vs.Secret != nil:
		p, err := secretPayload(pod, vs.Secret.SecretName, vs.Secret.Items, vs.Secret.Optional, vs.Secret.DefaultMode, cfg)
		return p, true, err
	case vs.DownwardAPI != nil:
		p, err := downwardPayload(pod, vs.DownwardAPI.Items, vs.DownwardAPI.DefaultMode, info)
		return p, true, err
	case vs.Projected != nil:
		p, err := projectedPayload(pod, vs.Projected, cfg, info)
		return p, true, err
	}
	return nil, false, nil
}
