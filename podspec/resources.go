package podspec

import (
	"context"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/cgroups"
	"github.com/podsup/podsup/qos"
)

// PodLimits are the limits of the pod's own cgroup from its pod-level
// resources, as the kubelet sets them: shares from the CPU request, a CFS
// quota from the CPU limit, and the memory limit. ok is false for a pod
// without pod-level resources.
func PodLimits(pod *v1.Pod) (l cgroups.PodLimits, ok bool) {
	if !qos.HasPodResources(pod) {
		return l, false
	}
	r := pod.Spec.Resources
	l.CPUShares = qos.CPUShares(r.Requests.Cpu())
	if quota := qos.CPUQuota(r.Limits.Cpu()); quota > 0 {
		l.CPUQuotaUsecs, l.CPUPeriodUsecs = quota, qos.CFSPeriodUsecs
	}
	l.MemoryBytes = r.Limits.Memory().Value()
	return l, true
}

// resourceOpts turn requests and limits into cgroup settings and the OOM
// score, as the kubelet computes them.
func (n Node) resourceOpts(pod *v1.Pod, c *v1.Container) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithCPUShares(qos.CPUShares(c.Resources.Requests.Cpu()))}
	if quota := qos.CPUQuota(c.Resources.Limits.Cpu()); quota > 0 {
		opts = append(opts, oci.WithCPUCFS(quota, qos.CFSPeriodUsecs))
	}
	if mem := c.Resources.Limits.Memory().Value(); mem > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(mem)))
	}
	if n.Hugetlb {
		opts = append(opts, withHugepageLimits(c, n.HugePageSizes))
	}
	return append(opts, withOOMScoreAdj(n.clampOOM(qos.OOMScoreAdj(pod, c, n.MemoryCapacity))))
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
