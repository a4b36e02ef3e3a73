package runtime

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/qos"
)

// securityOf is a container's effective security context: the container's
// fields, falling back to the pod's.
type securityOf struct {
	runAsUser, runAsGroup *int64
	runAsNonRoot          *bool
	seccomp               *v1.SeccompProfile
	c                     *v1.SecurityContext // may be nil
}

func effectiveSecurity(pod *v1.Pod, c *v1.Container) securityOf {
	s := securityOf{c: c.SecurityContext}
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

func (s securityOf) privileged() bool {
	return s.c != nil && s.c.Privileged != nil && *s.c.Privileged
}

// userString is what the container runs as, in oci.WithUser's syntax:
// runAsUser and runAsGroup override the image's user.
func (s securityOf) userString(imageUser string) string {
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
func (s securityOf) verifyNonRoot(user string) error {
	if s.runAsNonRoot == nil || !*s.runAsNonRoot {
		return nil
	}
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		u = "0"
	}
	uid, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: container has runAsNonRoot and the image's user %q is not numeric, so it cannot be verified to be non-root; set runAsUser", ErrCreateConfig, u)
	}
	if uid == 0 {
		return fmt.Errorf("%w: container has runAsNonRoot and the image will run as root; set runAsUser or use a non-root image", ErrCreateConfig)
	}
	return nil
}

// processArgs are the container's argv as Kubernetes defines them: command
// replaces the image's entrypoint (and drops its cmd), args replace its cmd.
func processArgs(img ocispec.ImageConfig, c *v1.Container) []string {
	switch {
	case len(c.Command) > 0:
		return append(append([]string{}, c.Command...), c.Args...)
	case len(c.Args) > 0:
		return append(append([]string{}, img.Entrypoint...), c.Args...)
	default:
		return append(append([]string{}, img.Entrypoint...), img.Cmd...)
	}
}

// withArgs sets argv, expanding $(VAR) references from the environment.
func withArgs(args []string, env []string) oci.SpecOpts {
	lookup := envLookup(env)
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if len(args) == 0 {
			return fmt.Errorf("%w: no command: the image has no entrypoint or cmd and the container sets no command", ErrCreateConfig)
		}
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = Expand(a, lookup)
		}
		s.Process.Args = out
		return nil
	}
}

// withNamespace replaces or adds a namespace; an empty path makes a new one.
func withNamespace(t specs.LinuxNamespaceType, path string) oci.SpecOpts {
	return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: t, Path: path})
}

// withMount adds a mount, replacing one at the same destination.
func withMount(m specs.Mount) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for i := range s.Mounts {
			if filepath.Clean(s.Mounts[i].Destination) == filepath.Clean(m.Destination) {
				s.Mounts[i] = m
				return nil
			}
		}
		s.Mounts = append(s.Mounts, m)
		return nil
	}
}

func bindMount(src, dst string, readOnly bool) specs.Mount {
	opts := []string{"rbind", "rprivate"}
	if readOnly {
		opts = append(opts, "ro")
	} else {
		opts = append(opts, "rw")
	}
	return specs.Mount{Source: src, Destination: dst, Type: "bind", Options: opts}
}

// withRootfsPropagation makes the container's root mount rslave or rshared,
// which mounts with that propagation need.
func withRootfsPropagation(p string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.RootfsPropagation = p
		return nil
	}
}

func withAnnotation(k, v string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
		return nil
	}
}

func withOOMScoreAdj(adj int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.OOMScoreAdj = &adj
		return nil
	}
}

// withoutRlimits drops the default spec's RLIMIT_NOFILE of 1024, so
// containers inherit containerd's limits, as with the CRI plugin.
func withoutRlimits(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	s.Process.Rlimits = nil
	return nil
}

// withNoNewPrivileges follows allowPrivilegeEscalation, which Kubernetes
// leaves allowed unless it is set to false.
func withNoNewPrivileges(on bool) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.NoNewPrivileges = on
		return nil
	}
}

func withSysctls(sysctls []v1.Sysctl) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if len(sysctls) == 0 {
			return nil
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for _, sc := range sysctls {
			s.Linux.Sysctl[sc.Name] = sc.Value
		}
		return nil
	}
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
			if !containsGID(s.Process.User.AdditionalGids, uint32(g)) {
				s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
			}
		}
		return nil
	}
}

func containsGID(list []uint32, g uint32) bool {
	for _, x := range list {
		if x == g {
			return true
		}
	}
	return false
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
	for _, c := range caps {
		if strings.EqualFold(string(c), "ALL") {
			return true
		}
	}
	return false
}

// securityOpts are the privilege, capability, seccomp and filesystem settings
// of a container's security context.
func (r *Runtime) securityOpts(sec securityOf) ([]oci.SpecOpts, error) {
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
	if c != nil && c.ReadOnlyRootFilesystem != nil && *c.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if sec.seccomp != nil && !sec.privileged() {
		switch sec.seccomp.Type {
		case v1.SeccompProfileTypeRuntimeDefault:
			opts = append(opts, seccomp.WithDefaultProfile())
		case v1.SeccompProfileTypeLocalhost:
			if sec.seccomp.LocalhostProfile == nil {
				return nil, fmt.Errorf("%w: seccompProfile Localhost without localhostProfile", ErrCreateConfig)
			}
			opts = append(opts, seccomp.WithProfile(filepath.Join(r.rootDir, "seccomp", *sec.seccomp.LocalhostProfile)))
		}
	}
	return opts, nil
}

// resourceOpts turn requests and limits into cgroup settings and the OOM
// score, as the kubelet computes them.
func (r *Runtime) resourceOpts(pod *v1.Pod, c *v1.Container) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithCPUShares(qos.CPUShares(c.Resources.Requests.Cpu()))}
	if quota := qos.CPUQuota(c.Resources.Limits.Cpu()); quota > 0 {
		opts = append(opts, oci.WithCPUCFS(quota, qos.CFSPeriodUsecs))
	}
	if mem := c.Resources.Limits.Memory().Value(); mem > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(mem)))
	}
	return append(opts, withOOMScoreAdj(r.clampOOM(qos.OOMScoreAdj(pod, c, r.memCapacity))))
}
