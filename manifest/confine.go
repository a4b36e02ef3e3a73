package manifest

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// appArmor checks an appArmorProfile field as the apiserver does. Whether
// the host can enforce it is the runtime's to say when the pod starts.
func (c *checker) appArmor(p string, ap *v1.AppArmorProfile) {
	if ap == nil {
		return
	}
	c.securityProfile(p, string(ap.Type), ap.LocalhostProfile, "the name of a profile loaded on the host")
}

// appArmorAnnotations checks the deprecated per-container AppArmor
// annotations as the apiserver does: each names a container of the pod, has
// a value podsup understands and, where the container also has a profile
// in its fields, agrees with it.
func (c *checker) appArmorAnnotations(pod *v1.Pod) {
	for key, value := range pod.Annotations {
		name, ok := strings.CutPrefix(key, v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix)
		if !ok {
			continue
		}
		p := "metadata.annotations[" + key + "]"
		ctr := findContainer(&pod.Spec, name)
		if ctr == nil {
			c.fail(p, "the pod has no container %q", name)
			continue
		}
		profile := AppArmorFromAnnotation(value)
		if profile == nil || profile.Type == v1.AppArmorProfileTypeLocalhost && strings.TrimSpace(*profile.LocalhostProfile) == "" {
			c.fail(p, "%q is not one of runtime/default, unconfined, localhost/<profile>", value)
			continue
		}
		field := fieldProfile(pod, ctr)
		if field != nil && !equality.Semantic.DeepEqual(field, profile) {
			c.fail(p, "%q does not match the container's appArmorProfile (type %s); remove the annotation", value, field.Type)
		}
	}
}

// fieldProfile is the AppArmor profile a container's fields give it: its
// own, or the pod's.
func fieldProfile(pod *v1.Pod, ctr *v1.Container) *v1.AppArmorProfile {
	if sc := ctr.SecurityContext; sc != nil && sc.AppArmorProfile != nil {
		return sc.AppArmorProfile
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		return sc.AppArmorProfile
	}
	return nil
}

func findContainer(s *v1.PodSpec, name string) *v1.Container {
	for _, list := range [][]v1.Container{s.InitContainers, s.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// AppArmorFromAnnotation is the profile a deprecated
// container.apparmor.security.beta.kubernetes.io annotation names, or nil
// when its value is not one of runtime/default, localhost/<name> and
// unconfined.
func AppArmorFromAnnotation(value string) *v1.AppArmorProfile {
	switch {
	case value == v1.DeprecatedAppArmorBetaProfileRuntimeDefault:
		return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
	case value == v1.DeprecatedAppArmorBetaProfileNameUnconfined:
		return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}
	case strings.HasPrefix(value, v1.DeprecatedAppArmorBetaProfileNamePrefix):
		name := strings.TrimPrefix(value, v1.DeprecatedAppArmorBetaProfileNamePrefix)
		return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &name}
	}
	return nil
}
