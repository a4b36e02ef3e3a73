package podspec

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	v1 "k8s.io/api/core/v1"
)

// SELinux is how podsup labels processes and mounts on a host that
// enforces SELinux.
type SELinux struct {
	// Labels are the process and mount labels of a container with these
	// options (user:, role:, type:, level:), the host's container defaults
	// filling in what they leave out, with a level of its own if none is
	// given (go-selinux's InitLabels, as the CRI plugin uses it).
	Labels func(options []string) (process, mount string, err error)
	// Options are the options of a label, for a container to take its
	// sandbox's (go-selinux's DupSecOpt).
	Options func(label string) ([]string, error)
}

// SELinuxLabels are a pod's or a container's SELinux labels.
type SELinuxLabels struct{ Process, Mount string }

// selinuxOptions are seLinuxOptions as label options; none for nil.
func selinuxOptions(o *v1.SELinuxOptions) []string {
	if o == nil {
		return nil
	}
	var out []string
	for _, kv := range [][2]string{{"user", o.User}, {"role", o.Role}, {"type", o.Type}, {"level", o.Level}} {
		if kv[1] != "" {
			out = append(out, kv[0]+":"+kv[1])
		}
	}
	return out
}

// SandboxLabels are the SELinux labels of a pod's sandbox, from the pod's
// seLinuxOptions; none on a host without SELinux.
func (n Node) SandboxLabels(pod *v1.Pod) (SELinuxLabels, error) {
	if n.SELinux == nil {
		return SELinuxLabels{}, nil
	}
	var opts []string
	if sc := pod.Spec.SecurityContext; sc != nil {
		opts = selinuxOptions(sc.SELinuxOptions)
	}
	p, m, err := n.SELinux.Labels(opts)
	if err != nil {
		return SELinuxLabels{}, fmt.Errorf("%w: spec.securityContext.seLinuxOptions: %w", ErrInvalid, err)
	}
	return SELinuxLabels{p, m}, nil
}

// containerLabels are a container's SELinux labels, as the CRI plugin makes
// them: from the container's seLinuxOptions, which replace the pod's as a
// whole (the kubelet does not merge them field by field); without any, the
// sandbox's, so that the pod's containers share its level.
func (n Node) containerLabels(pod *v1.Pod, c *v1.Container, sandbox string) (SELinuxLabels, error) {
	if n.SELinux == nil {
		return SELinuxLabels{}, nil
	}
	var opts []string
	field := containerField(pod, c.Name) + ".securityContext.seLinuxOptions"
	if sc := c.SecurityContext; sc != nil && sc.SELinuxOptions != nil {
		opts = selinuxOptions(sc.SELinuxOptions)
	} else if sandbox != "" {
		var err error
		if opts, err = n.SELinux.Options(sandbox); err != nil {
			return SELinuxLabels{}, fmt.Errorf("%w: the sandbox's SELinux label %q: %w", ErrInvalid, sandbox, err)
		}
	}
	p, m, err := n.SELinux.Labels(opts)
	if err != nil {
		return SELinuxLabels{}, fmt.Errorf("%w: %s: %w", ErrInvalid, field, err)
	}
	return SELinuxLabels{p, m}, nil
}

// withSELinuxLabels sets the process label and the label of the
// container's mounts; empty ones are left unset.
func withSELinuxLabels(l SELinuxLabels) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if l.Process != "" {
			s.Process.SelinuxLabel = l.Process
		}
		if l.Mount != "" {
			s.Linux.MountLabel = l.Mount
		}
		return nil
	}
}

// AsksSELinux reports whether a pod or one of its containers sets
// seLinuxOptions, which a host without SELinux ignores.
func AsksSELinux(pod *v1.Pod) bool {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.SELinuxOptions != nil {
		return true
	}
	for _, c := range allContainers(pod) {
		if sc := c.SecurityContext; sc != nil && sc.SELinuxOptions != nil {
			return true
		}
	}
	return false
}
