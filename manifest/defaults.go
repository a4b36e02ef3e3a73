package manifest

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Well-known priority classes. Without an apiserver there is no PriorityClass
// object to look up, so podsup knows the two built-in ones by name, with the
// values the apiserver gives them.
const (
	SystemNodeCritical    = "system-node-critical"
	SystemClusterCritical = "system-cluster-critical"

	systemNodeCriticalPriority    = int32(2000001000)
	systemClusterCriticalPriority = int32(2000000000)
)

// Defaults the kubelet's API machinery would apply.
const (
	defaultGracePeriod       = int64(30)
	defaultTerminationPath   = "/dev/termination-log"
	defaultFileMode          = int32(0o644)
	defaultProbeTimeout      = int32(1)
	defaultProbePeriod       = int32(10)
	defaultProbeSuccess      = int32(1)
	defaultProbeFailure      = int32(3)
	defaultFieldRefAPI       = "v1"
	defaultHTTPGetPath       = "/"
	defaultHTTPGetScheme     = v1.URISchemeHTTP
	defaultPortProtocol      = v1.ProtocolTCP
	defaultImagePullOfLatest = v1.PullAlways
)

// SetDefaults fills in what the apiserver would: restart and DNS policies,
// grace period, pull policies, probe timings, port protocols, volume modes,
// requests equal to limits where only limits are given, and the priority of
// the built-in priority classes. It is idempotent.
func SetDefaults(pod *v1.Pod) {
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	spec := &pod.Spec
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = v1.RestartPolicyAlways
	}
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = v1.DNSClusterFirst
	}
	if spec.TerminationGracePeriodSeconds == nil {
		g := defaultGracePeriod
		spec.TerminationGracePeriodSeconds = &g
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &v1.PodSecurityContext{}
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = "default-scheduler"
	}
	if spec.Priority == nil {
		switch spec.PriorityClassName {
		case SystemNodeCritical:
			p := systemNodeCriticalPriority
			spec.Priority = &p
		case SystemClusterCritical:
			p := systemClusterCriticalPriority
			spec.Priority = &p
		}
	}
	if spec.Resources != nil {
		requestLimits(spec.Resources)
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	for i := range spec.Volumes {
		defaultVolume(&spec.Volumes[i].VolumeSource)
	}
}

// requestLimits makes a limit without a request request the limit, which
// is what makes a pod with only limits Guaranteed: for a container, and for
// pod-level resources.
func requestLimits(r *v1.ResourceRequirements) {
	for name, limit := range r.Limits {
		if _, ok := r.Requests[name]; !ok {
			if r.Requests == nil {
				r.Requests = v1.ResourceList{}
			}
			r.Requests[name] = limit.DeepCopy()
		}
	}
}

func defaultContainer(c *v1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = DefaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = defaultTerminationPath
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = v1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = defaultPortProtocol
		}
	}
	requestLimits(&c.Resources)
	for _, p := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		defaultProbe(p)
	}
	if c.Lifecycle != nil {
		defaultHandler(c.Lifecycle.PostStart)
		defaultHandler(c.Lifecycle.PreStop)
	}
	for i := range c.Env {
		if vf := c.Env[i].ValueFrom; vf != nil && vf.FieldRef != nil && vf.FieldRef.APIVersion == "" {
			vf.FieldRef.APIVersion = defaultFieldRefAPI
		}
	}
}

// DefaultPullPolicy is the kubelet's: Always for an image tagged latest or not
// tagged at all, IfNotPresent otherwise (a digest counts as a tag).
func DefaultPullPolicy(image string) v1.PullPolicy {
	if strings.Contains(image, "@") {
		return v1.PullIfNotPresent
	}
	name := image
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		tag = name[i+1:]
	}
	if tag == "" || tag == "latest" {
		return defaultImagePullOfLatest
	}
	return v1.PullIfNotPresent
}

func defaultProbe(p *v1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = defaultProbeTimeout
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = defaultProbePeriod
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = defaultProbeSuccess
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = defaultProbeFailure
	}
	if h := p.HTTPGet; h != nil {
		defaultHTTPGet(h)
	}
}

func defaultHandler(h *v1.LifecycleHandler) {
	if h != nil && h.HTTPGet != nil {
		defaultHTTPGet(h.HTTPGet)
	}
}

func defaultHTTPGet(h *v1.HTTPGetAction) {
	if h.Path == "" {
		h.Path = defaultHTTPGetPath
	}
	if h.Scheme == "" {
		h.Scheme = defaultHTTPGetScheme
	}
}

func defaultVolume(vs *v1.VolumeSource) {
	mode := func(m **int32) {
		if *m == nil {
			d := defaultFileMode
			*m = &d
		}
	}
	switch {
	case vs.HostPath != nil:
		if vs.HostPath.Type == nil {
			t := v1.HostPathUnset
			vs.HostPath.Type = &t
		}
	case vs.ConfigMap != nil:
		mode(&vs.ConfigMap.DefaultMode)
	case vs.Secret != nil:
		mode(&vs.Secret.DefaultMode)
	case vs.DownwardAPI != nil:
		mode(&vs.DownwardAPI.DefaultMode)
		defaultFieldRefs(vs.DownwardAPI.Items)
	case vs.Image != nil:
		if vs.Image.PullPolicy == "" {
			vs.Image.PullPolicy = DefaultPullPolicy(vs.Image.Reference)
		}
	case vs.Projected != nil:
		mode(&vs.Projected.DefaultMode)
		for _, src := range vs.Projected.Sources {
			if src.DownwardAPI != nil {
				defaultFieldRefs(src.DownwardAPI.Items)
			}
		}
	}
}

func defaultFieldRefs(items []v1.DownwardAPIVolumeFile) {
	for i := range items {
		if f := items[i].FieldRef; f != nil && f.APIVersion == "" {
			f.APIVersion = defaultFieldRefAPI
		}
	}
}

// ResolvePort finds a probe's or hook's port in the container: a number is
// itself, a name is looked up among the container's ports. ok is false when a
// name matches no port.
func ResolvePort(port intstr.IntOrString, c *v1.Container) (int32, bool) {
	if port.Type == intstr.Int {
		return port.IntVal, true
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort, true
		}
	}
	return 0, false
}
