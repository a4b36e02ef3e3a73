package podspec

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/manifest"
)

// AppArmorDefaultProfile is the name containerd's default AppArmor profile
// is loaded under, the same as the CRI plugin's, so that a node moved from
// the kubelet confines its containers with the profile it already has.
const AppArmorDefaultProfile = "cri-containerd.apparmor.d"

// AppArmor is what podsup does with AppArmor on a host that enforces it.
type AppArmor struct {
	// LoadDefault loads containerd's default profile under a name, unless
	// a profile of that name is loaded already.
	LoadDefault func(name string) error
	// Loaded reports whether a profile of that name is loaded in the kernel.
	Loaded func(name string) (bool, error)
}

// appArmorChoice is the AppArmor profile a container asks for and where it
// was set, for messages.
type appArmorChoice struct {
	profile *v1.AppArmorProfile // nil: none asked for
	field   string
}

// appArmorProfile picks a container's AppArmor profile as the kubelet does:
// the container's field, then the deprecated annotation (the apiserver
// copies annotations into fields, but static pods never pass through it),
// then the pod's field.
func appArmorProfile(pod *v1.Pod, c *v1.Container, field string) appArmorChoice {
	if sc := c.SecurityContext; sc != nil && sc.AppArmorProfile != nil {
		return appArmorChoice{sc.AppArmorProfile, field + ".securityContext.appArmorProfile"}
	}
	key := v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + c.Name
	if value, ok := pod.Annotations[key]; ok {
		if p := manifest.AppArmorFromAnnotation(value); p != nil {
			return appArmorChoice{p, "metadata.annotations[" + key + "]"}
		}
	}
	if sc := pod.Spec.SecurityContext; sc != nil && sc.AppArmorProfile != nil {
		return appArmorChoice{sc.AppArmorProfile, "spec.securityContext.appArmorProfile"}
	}
	return appArmorChoice{}
}

// Admit says whether this host can run a pod as it asks, as the kubelet's
// admission does; when not, a reason and a message, and the pod waits.
// A pod that asks for an AppArmor profile other than Unconfined is refused
// on a host without AppArmor: the kubelet refuses RuntimeDefault there as
// well as Localhost, and so does containerd's CRI plugin, rather than run
// unconfined a container whose author asked for confinement.
func (n Node) Admit(pod *v1.Pod) (ok bool, reason, message string) {
	if n.AppArmor != nil {
		return true, "", ""
	}
	for field, c := range allContainers(pod) {
		choice := appArmorProfile(pod, c, field)
		if choice.profile != nil && choice.profile.Type != v1.AppArmorProfileTypeUnconfined {
			return false, "AppArmor", fmt.Sprintf("Cannot enforce AppArmor: AppArmor is not enabled on the host; %s asks for %s (use Unconfined, or run the pod on a host with AppArmor)",
				choice.field, describeAppArmor(choice.profile))
		}
	}
	return true, "", ""
}

func describeAppArmor(p *v1.AppArmorProfile) string {
	if p.Type == v1.AppArmorProfileTypeLocalhost && p.LocalhostProfile != nil {
		return fmt.Sprintf("the Localhost profile %q", *p.LocalhostProfile)
	}
	return string(p.Type)
}

// allContainers yields a pod's init containers and containers with their
// field paths.
func allContainers(pod *v1.Pod) func(yield func(string, *v1.Container) bool) {
	return func(yield func(string, *v1.Container) bool) {
		for i := range pod.Spec.InitContainers {
			if !yield(fmt.Sprintf("spec.initContainers[%d]", i), &pod.Spec.InitContainers[i]) {
				return
			}
		}
		for i := range pod.Spec.Containers {
			if !yield(fmt.Sprintf("spec.containers[%d]", i), &pod.Spec.Containers[i]) {
				return
			}
		}
	}
}

// containerField is the path of a pod's container, for messages:
// spec.containers[0].
func containerField(pod *v1.Pod, name string) string {
	for field, c := range allContainers(pod) {
		if c.Name == name {
			return field
		}
	}
	return "container " + name
}

// appArmorOpts confines a container with the profile it asks for, as the
// CRI plugin does: none asked for is RuntimeDefault; RuntimeDefault is
// containerd's default profile, except for a privileged container, which
// is left unconfined; Localhost is a profile loaded on the host. On a host
// without AppArmor nothing is set (Admit has refused what needed it).
func (n Node) appArmorOpts(choice appArmorChoice, privileged bool) []oci.SpecOpts {
	if n.AppArmor == nil {
		return nil
	}
	p := choice.profile
	if p == nil {
		p = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
	}
	switch p.Type {
	case v1.AppArmorProfileTypeRuntimeDefault:
		if privileged {
			return nil
		}
		return []oci.SpecOpts{withAppArmorProfile(AppArmorDefaultProfile, func(name string) error {
			if err := n.AppArmor.LoadDefault(name); err != nil {
				return fmt.Errorf("load containerd's default AppArmor profile as %s: %w", name, err)
			}
			return nil
		})}
	case v1.AppArmorProfileTypeLocalhost:
		name := ""
		if p.LocalhostProfile != nil {
			name = *p.LocalhostProfile
		}
		return []oci.SpecOpts{withAppArmorProfile(name, func(name string) error {
			loaded, err := n.AppArmor.Loaded(name)
			if err != nil {
				return fmt.Errorf("%s: AppArmor profile %q: %w", choice.field, name, err)
			}
			if !loaded {
				return fmt.Errorf("%s: AppArmor profile %q is not loaded on this host; load it with apparmor_parser", choice.field, name)
			}
			return nil
		})}
	}
	return nil
}

// withAppArmorProfile runs the process under an AppArmor profile, once
// ensure (which loads or checks it) has succeeded.
func withAppArmorProfile(name string, ensure func(string) error) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if err := ensure(name); err != nil {
			return err
		}
		s.Process.ApparmorProfile = name
		return nil
	}
}
