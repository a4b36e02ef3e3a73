// Package stats measures what the node and its pods use, as the kubelet's
// cAdvisor does: CPU, memory and processes from the cgroups, disk from the
// filesystems, network from each pod's namespace. It serves the kubelet's
// Summary API (/stats/summary), in the kubelet's own types
// (k8s.io/kubelet/pkg/apis/stats/v1alpha1) so that tools reading a
// kubelet's summary read podsup's, and feeds the eviction manager.
package stats
