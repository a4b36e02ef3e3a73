package podspec

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// fakeAppArmor is a host with AppArmor enforced, whose kernel has the
// profiles in loaded; it records the defaults it is asked to load.
type fakeAppArmor struct {
	loaded       []string
	loadDefaults []string
}

func (f *fakeAppArmor) host() *AppArmor {
	return &AppArmor{
		LoadDefault: func(name string) error { f.loadDefaults = append(f.loadDefaults, name); return nil },
		Loaded:      func(name string) (bool, error) { return slices.Contains(f.loaded, name), nil },
	}
}

func localhost(name string) *v1.AppArmorProfile {
	return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &name}
}

var (
	runtimeDefault = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
	unconfined     = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}
)

// appArmorPod is the test pod with AppArmor profiles on the pod, the
// container and in the deprecated annotation (each may be nil or empty).
func appArmorPod(podProfile, ctrProfile *v1.AppArmorProfile, annotation string, privileged bool) *v1.Pod {
	pod := testPod()
	if podProfile != nil {
		pod.Spec.SecurityContext = &v1.PodSecurityContext{AppArmorProfile: podProfile}
	}
	if ctrProfile != nil || privileged {
		pod.Spec.Containers[0].SecurityContext = &v1.SecurityContext{AppArmorProfile: ctrProfile, Privileged: ptr.To(privileged)}
	}
	if annotation != "" {
		pod.Annotations = map[string]string{v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "app": annotation}
	}
	return pod
}

// TestAppArmorSpec: on a host with AppArmor, a container runs under the
// profile it asks for, picked as the kubelet picks it; with none, under
// containerd's default, loaded first; privileged ones are not confined by
// default. On a host without AppArmor no profile is set.
func TestAppArmorSpec(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		pod, ctr               *v1.AppArmorProfile
		annotation             string
		privileged, noAppArmor bool
		want                   string
	}{
		{name: "none asked for", want: AppArmorDefaultProfile},
		{name: "pod RuntimeDefault", pod: runtimeDefault, want: AppArmorDefaultProfile},
		{name: "pod Localhost", pod: localhost("k8s-web"), want: "k8s-web"},
		{name: "container over pod", pod: localhost("k8s-web"), ctr: unconfined, want: ""},
		{name: "annotation over pod", pod: unconfined, annotation: "localhost/k8s-web", want: "k8s-web"},
		{name: "container over annotation", ctr: runtimeDefault, annotation: "unconfined", want: AppArmorDefaultProfile},
		{name: "privileged by default", privileged: true, want: ""},
		{name: "privileged with Localhost", ctr: localhost("k8s-web"), privileged: true, want: "k8s-web"},
		{name: "host without AppArmor", pod: runtimeDefault, noAppArmor: true, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeAppArmor{loaded: []string{"k8s-web"}}
			n := node
			if !tc.noAppArmor {
				n.AppArmor = fake.host()
			}
			pod := appArmorPod(tc.pod, tc.ctr, tc.annotation, tc.privileged)
			s := apply(t, n.appArmorOpts(appArmorProfile(pod, &pod.Spec.Containers[0], "spec.containers[0]"), tc.privileged)...)
			if s.Process.ApparmorProfile != tc.want {
				t.Errorf("AppArmor profile %q, want %q", s.Process.ApparmorProfile, tc.want)
			}
			if wantLoad := tc.want == AppArmorDefaultProfile; wantLoad != slices.Equal(fake.loadDefaults, []string{AppArmorDefaultProfile}) {
				t.Errorf("default profiles loaded: %q; want it loaded: %v", fake.loadDefaults, wantLoad)
			}
		})
	}
}

// TestAppArmorNotLoaded: a Localhost profile the kernel does not have stops
// the container's creation, naming the profile and the field.
func TestAppArmorNotLoaded(t *testing.T) {
	n := node
	n.AppArmor = (&fakeAppArmor{}).host()
	pod := appArmorPod(nil, localhost("k8s-missing"), "", false)
	opts, err := n.ContainerSpec(testContainer(pod))
	if err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "podspec-test")
	_, err = oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, append([]oci.SpecOpts{oci.WithRootFSPath(rootfs(t))}, opts...)...)
	want := `spec.containers[0].securityContext.appArmorProfile: AppArmor profile "k8s-missing" is not loaded on this host`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestAppArmorDefaultLoadFails: a default profile that cannot be loaded
// stops the container's creation rather than running it unconfined.
func TestAppArmorDefaultLoadFails(t *testing.T) {
	broken := errors.New("apparmor_parser: not found")
	s := &oci.Spec{Process: &specs.Process{}}
	err := withAppArmorProfile(AppArmorDefaultProfile, func(string) error { return broken })(context.Background(), nil, nil, s)
	if !errors.Is(err, broken) || s.Process.ApparmorProfile != "" {
		t.Errorf("error %v, profile %q; want the load's error and no profile", err, s.Process.ApparmorProfile)
	}
}

// TestAppArmorAdmission: on a host without AppArmor a pod asking for any
// profile but Unconfined is refused, as the kubelet refuses it, with
// reason AppArmor and the field named; with AppArmor, every pod is
// admitted.
func TestAppArmorAdmission(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pod, ctr   *v1.AppArmorProfile
		annotation string
		want       string // "": admitted
	}{
		{name: "none asked for"},
		{name: "Unconfined", pod: unconfined, ctr: unconfined},
		{name: "pod RuntimeDefault", pod: runtimeDefault, want: "spec.securityContext.appArmorProfile asks for RuntimeDefault"},
		{name: "container Localhost", ctr: localhost("k8s-web"), want: `spec.containers[0].securityContext.appArmorProfile asks for the Localhost profile "k8s-web"`},
		{name: "annotation", annotation: "localhost/k8s-web", want: `metadata.annotations[container.apparmor.security.beta.kubernetes.io/app] asks for the Localhost profile "k8s-web"`},
		{name: "container Unconfined over pod", pod: runtimeDefault, ctr: unconfined},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := appArmorPod(tc.pod, tc.ctr, tc.annotation, false)
			ok, reason, message := node.Admit(pod)
			if tc.want == "" {
				if !ok {
					t.Errorf("refused: %s: %s", reason, message)
				}
			} else if ok || reason != "AppArmor" || !strings.HasPrefix(message, "Cannot enforce AppArmor: AppArmor is not enabled on the host") || !strings.Contains(message, tc.want) {
				t.Errorf("admitted %v, %s: %s; want refused with reason AppArmor naming %q", ok, reason, message, tc.want)
			}
			withAppArmor := node
			withAppArmor.AppArmor = (&fakeAppArmor{}).host()
			if ok, reason, message := withAppArmor.Admit(pod); !ok {
				t.Errorf("refused on a host with AppArmor: %s: %s", reason, message)
			}
		})
	}
}
