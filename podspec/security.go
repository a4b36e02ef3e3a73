package podspec

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	v1 "k8s.io/api/core/v1"
)

// security is a container's effective security context: the container's
// fields, falling back to the pod's.
type security struct {
	runAsUser, runAsGroup *int64
	runAsNonRoot          *bool
	seccomp               *v1.SeccompProfile
	c                     *v1.SecurityContext // may be nil
}

// effectiveSecurity merges the pod's security context into the container's.
func effectiveSecurity(pod *v1.Pod, c *v1.Container) security {
	s := security{c: c.SecurityContext}
	if p := pod.Spec.SecurityContext; p != nil {
		s.runAsUser, s.runAsGroup, s.runAsNonRoot, s.seccomp = p.RunAsUser, p.RunAsGroup, p.RunAsNonRoot, p.SeccompProfile
	}
	if cs := c.SecurityContext; cs != nil {
		if cs.RunAsUser != nil {
			s.runAsUser = cs.RunAsUser
		}
		if cs.RunAsGroup != nil {
			s.runAsGroup = cs.RunAsGroup
		}
		if cs.RunAsNonRoot != nil {
			s.runAsNonRoot = cs.RunAsNonRoot
		}
		if cs.SeccompProfile != nil {
			s.seccomp = cs.SeccompProfile
		}
	}
	return s
}

// privileged reports whether the container is privileged.
func (s security) privileged() bool {
	return s.c != nil && s.c.Privileged != nil && *s.c.Privileged
}

func (s security) readOnlyRoot() bool {
	return s.c != nil && s.c.ReadOnlyRootFilesystem != nil && *s.c.ReadOnlyRootFilesystem
}

// user is what the container runs as, in oci.WithUser's syntax: runAsUser
// and runAsGroup override the image's user.
func (s security) user(imageUser string) string {
	user := imageUser
	if s.runAsUser != nil {
		user = strconv.FormatInt(*s.runAsUser, 10)
	}
	if s.runAsGroup != nil {
		u, _, _ := strings.Cut(user, ":")
		if u == "" {
			u = "0"
		}
		user = u + ":" + strconv.FormatInt(*s.runAsGroup, 10)
	}
	return user
}

// verifyNonRoot enforces runAsNonRoot as the kubelet does: the user must be
// numeric and not 0.
func (s security) verifyNonRoot(user string) error {
	if s.runAsNonRoot == nil || !*s.runAsNonRoot {
		return nil
	}
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		u = "0"
	}
	uid, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: container has runAsNonRoot and the image's user %q is not numeric, so it cannot be verified to be non-root; set runAsUser", ErrInvalid, u)
	}
	if uid == 0 {
		return fmt.Errorf("%w: container has runAsNonRoot and the image will run as root; set runAsUser or use a non-root image", ErrInvalid)
	}
	return nil
}

// withUser sets the process's user and, unless strict, the groups the
// image's /etc/group gives it; with no user, root's, as containerd does for
// an image without one. With supplementalGroupsPolicy Strict the image's
// groups are left out, as the CRI plugin leaves them out: the process has
// its primary group and the pod's fsGroup and supplementalGroups only.
func withUser(user string, strict bool) []oci.SpecOpts {
	var opts []oci.SpecOpts
	u := "root"
	if user != "" {
		opts = append(opts, oci.WithUser(user))
		u, _, _ = strings.Cut(user, ":")
	}
	if !strict {
		opts = append(opts, oci.WithAdditionalGIDs(u))
	}
	return opts
}

// strictGroups reports whether a pod's supplementalGroupsPolicy is Strict
// (Merge is the default).
func strictGroups(pod *v1.Pod) bool {
	sc := pod.Spec.SecurityContext
	return sc != nil && sc.SupplementalGroupsPolicy != nil && *sc.SupplementalGroupsPolicy == v1.SupplementalGroupsPolicyStrict
}

// withGroups adds the pod's fsGroup and supplementalGroups to the process.
func withGroups(pod *v1.Pod) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		psc := pod.Spec.SecurityContext
		if psc == nil {
			return nil
		}
		var gids []int64
		if psc.FSGroup != nil {
			gids = append(gids, *psc.FSGroup)
		}
		gids = append(gids, psc.SupplementalGroups...)
		for _, g := range gids {
			if !slices.Contains(s.Process.User.AdditionalGids, uint32(g)) {
				s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
			}
		}
		return nil
	}
}

// capabilityNames turns Kubernetes capability names (NET_ADMIN) into the
// kernel's (CAP_NET_ADMIN).
func capabilityNames(caps []v1.Capability) []string {
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		n := strings.ToUpper(string(c))
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		out = append(out, n)
	}
	return out
}

func hasAll(caps []v1.Capability) bool {
	return slices.ContainsFunc(caps, func(c v1.Capability) bool { return strings.EqualFold(string(c), "ALL") })
}

// withNoNewPrivileges follows allowPrivilegeEscalation, which Kubernetes
// leaves allowed unless it is set to false.
func withNoNewPrivileges(on bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.NoNewPrivileges = on
		return nil
	}
}

// securityOpts are the privilege, capability, seccomp and filesystem
// settings of a container's security context.
func (n Node) securityOpts(sec security) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	c := sec.c
	if sec.privileged() {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	} else if c != nil && c.Capabilities != nil {
		if hasAll(c.Capabilities.Drop) {
			opts = append(opts, oci.WithCapabilities(nil))
		} else if len(c.Capabilities.Drop) > 0 {
			opts = append(opts, oci.WithDroppedCapabilities(capabilityNames(c.Capabilities.Drop)))
		}
		if hasAll(c.Capabilities.Add) {
			opts = append(opts, oci.WithAllKnownCapabilities)
		} else if len(c.Capabilities.Add) > 0 {
			opts = append(opts, oci.WithAddedCapabilities(capabilityNames(c.Capabilities.Add)))
		}
	}
	noNewPrivs := c != nil && c.AllowPrivilegeEscalation != nil && !*c.AllowPrivilegeEscalation
	opts = append(opts, withNoNewPrivileges(noNewPrivs))
	if sec.readOnlyRoot() {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if sec.seccomp != nil && !sec.privileged() {
		switch sec.seccomp.Type {
		case v1.SeccompProfileTypeRuntimeDefault:
			opts = append(opts, seccomp.WithDefaultProfile())
		case v1.SeccompProfileTypeLocalhost:
			if sec.seccomp.LocalhostProfile == nil {
				return nil, fmt.Errorf("%w: seccompProfile Localhost without localhostProfile", ErrInvalid)
			}
			opts = append(opts, seccomp.WithProfile(filepath.Join(n.SeccompDir, *sec.seccomp.LocalhostProfile)))
		}
	}
	return opts, nil
}
