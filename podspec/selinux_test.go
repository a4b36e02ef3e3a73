package podspec

import (
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// fakeSELinux is a host that enforces SELinux: a label is its options
// joined, the defaults (system_u, system_r, container_t, s0:c1,c2) filling
// in what they lack, and its mount label the same with container_file_t.
func fakeSELinux() *SELinux {
	return &SELinux{
		Labels: func(options []string) (string, string, error) {
			con := map[string]string{"user": "system_u", "role": "system_r", "type": "container_t", "level": "s0:c1,c2"}
			for _, o := range options {
				k, v, _ := strings.Cut(o, ":")
				if k == "type" && v == "bad_t" {
					return "", "", errors.New("invalid type")
				}
				con[k] = v
			}
			return con["user"] + ":" + con["role"] + ":" + con["type"] + ":" + con["level"],
				con["user"] + ":object_r:container_file_t:" + con["level"], nil
		},
		Options: func(label string) ([]string, error) {
			f := strings.SplitN(label, ":", 4)
			return []string{"user:" + f[0], "role:" + f[1], "type:" + f[2], "level:" + f[3]}, nil
		},
	}
}

// TestSELinuxLabels: on a host with SELinux the pause container is
// labelled from the pod's seLinuxOptions, a container from its own (which
// replace the pod's whole) or else with its sandbox's label, and mounts
// get the matching mount label; on a host without SELinux nothing is set.
func TestSELinuxLabels(t *testing.T) {
	n := node
	n.SELinux = fakeSELinux()
	pod := testPod()
	pod.Spec.SecurityContext = &v1.PodSecurityContext{SELinuxOptions: &v1.SELinuxOptions{Level: "s0:c5,c6"}}
	labels, err := n.SandboxLabels(pod)
	if err != nil {
		t.Fatal(err)
	}
	s := apply(t, n.SandboxSpec(PauseContainer{Pod: pod, ID: "sb1", SELinux: labels})...)
	if s.Process.SelinuxLabel != "system_u:system_r:container_t:s0:c5,c6" || s.Linux.MountLabel != "system_u:object_r:container_file_t:s0:c5,c6" {
		t.Errorf("pause labels %q, %q; want the pod's level", s.Process.SelinuxLabel, s.Linux.MountLabel)
	}

	in := testContainer(pod)
	in.Sandbox.SELinuxLabel = labels.Process
	opts, err := n.ContainerSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	if s := apply(t, opts...); s.Process.SelinuxLabel != labels.Process || s.Linux.MountLabel != labels.Mount {
		t.Errorf("container without options: %q, %q; want the sandbox's %q", s.Process.SelinuxLabel, s.Linux.MountLabel, labels.Process)
	}

	pod.Spec.Containers[0].SecurityContext = &v1.SecurityContext{SELinuxOptions: &v1.SELinuxOptions{Type: "spc_t"}}
	opts, err = n.ContainerSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	if s := apply(t, opts...); s.Process.SelinuxLabel != "system_u:system_r:spc_t:s0:c1,c2" {
		t.Errorf("container with its own options: %q; want its type and not the pod's level (they replace the pod's whole)", s.Process.SelinuxLabel)
	}

	pod.Spec.Containers[0].SecurityContext.SELinuxOptions.Type = "bad_t"
	if _, err := n.ContainerSpec(in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "spec.containers[0].securityContext.seLinuxOptions: invalid type") {
		t.Errorf("bad options: %v; want ErrInvalid naming the field", err)
	}

	pod.Spec.Containers[0].SecurityContext.SELinuxOptions.Type = "spc_t"
	if s := containerSpec(t, in); s.Process.SelinuxLabel != "" || s.Linux.MountLabel != "" {
		t.Errorf("host without SELinux: labels %q, %q; want none", s.Process.SelinuxLabel, s.Linux.MountLabel)
	}
	if !AsksSELinux(pod) || AsksSELinux(testPod()) {
		t.Error("AsksSELinux does not tell a pod with seLinuxOptions from one without")
	}
}
