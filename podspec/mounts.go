package podspec

import (
	"context"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// containerMounts bind the pod's /etc files, its /dev/shm, the container's
// termination message file and its volumes, and make the root mount
// propagate as the volumes need.
func containerMounts(in Container, readOnlyRoot bool) []oci.SpecOpts {
	opts := []oci.SpecOpts{
		withMount(bindMount(in.Files.Hosts, "/etc/hosts", false)),
		withMount(bindMount(in.Files.ResolvConf, "/etc/resolv.conf", readOnlyRoot)),
		withMount(bindMount(in.Files.Hostname, "/etc/hostname", readOnlyRoot)),
	}
	if !in.Pod.Spec.HostIPC {
		opts = append(opts, withMount(bindMount(in.Files.Shm, "/dev/shm", false)))
	}
	if in.TerminationFile != "" && in.Container.TerminationMessagePath != "" {
		opts = append(opts, withMount(bindMount(in.TerminationFile, in.Container.TerminationMessagePath, false)))
	}
	for _, m := range in.Mounts {
		opts = append(opts, withMount(m))
	}
	if p := rootfsPropagation(in.Mounts); p != "" {
		opts = append(opts, withrootfsPropagation(p))
	}
	return opts
}

// rootfsPropagation is the propagation a container's root mount needs for
// its volumes: rshared if one of them is Bidirectional, rslave if one is
// HostToContainer, none otherwise.
func rootfsPropagation(mounts []specs.Mount) string {
	propagation := ""
	for _, m := range mounts {
		for _, o := range m.Options {
			if o == "rshared" || (o == "rslave" && propagation == "") {
				propagation = o
			}
		}
	}
	return propagation
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

// bindMount is a recursive, private bind of src at dst.
func bindMount(src, dst string, readOnly bool) specs.Mount {
	opts := []string{"rbind", "rprivate"}
	if readOnly {
		opts = append(opts, "ro")
	} else {
		opts = append(opts, "rw")
	}
	return specs.Mount{Source: src, Destination: dst, Type: "bind", Options: opts}
}

// withRootfsPropagation makes the container's root mount rslave or
// rshared, which mounts with that propagation need.
func withrootfsPropagation(p string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.RootfsPropagation = p
		return nil
	}
}

// withIDMappedBinds ID-maps every bind mount into a user namespace: files
// the host's IDs own appear owned by the same IDs of the pod.
func withIDMappedBinds(m specs.LinuxIDMapping) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for i := range s.Mounts {
			if s.Mounts[i].Type == "bind" {
				s.Mounts[i].UIDMappings = []specs.LinuxIDMapping{m}
				s.Mounts[i].GIDMappings = []specs.LinuxIDMapping{m}
			}
		}
		return nil
	}
}
