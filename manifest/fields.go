package manifest

import (
	"fmt"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
)

// Decision is what podsup does with a pod field.
type Decision int

// The decisions of FieldDecisions. Warned and Refused cover a field's whole
// subtree; Honoured names a leaf, so that a field added under it by a new
// k8s.io/api is not honoured by default.
const (
	Honoured Decision = iota // applied as the kubelet applies it
	Warned                   // accepted with a warning: it has no effect (for the values the reason names)
	Refused                  // the manifest is refused (for the values the reason names)
)

// FieldDecision records what podsup does with one field of a pod. Fields of
// containers are recorded once, under spec.containers[]; an entry under
// spec.initContainers[] overrides one for init containers.
type FieldDecision struct {
	// Path is the field as written in a manifest, lists as [], such as
	// spec.containers[].lifecycle.stopSignal.
	Path string
	// Value narrows the decision to one value of the field, or to map keys
	// or sysctl names that start with it when it ends in "*"; empty for
	// every value.
	Value    string
	Decision Decision
	Reason   string
}

// notHonouredYet reports the fields that podsup accepts but does not apply
// yet. Each, once implemented, goes from here, and its FieldDecisions entry
// becomes Honoured.
func (c *checker) notHonouredYet(s *v1.PodSpec) {
	const why = "not honoured by podsup yet: "
	if s.HostnameOverride != nil {
		c.warn("spec.hostnameOverride", why+"the host name is the pod's name")
	}
	if sc := s.SecurityContext; sc != nil {
		if sc.FSGroupChangePolicy != nil {
			c.warn("spec.securityContext.fsGroupChangePolicy", why+"it has no effect")
		}
		if sc.SELinuxChangePolicy != nil {
			c.warn("spec.securityContext.seLinuxChangePolicy", why+"containers are not labelled for SELinux")
		}
	}
	for i := range s.InitContainers {
		c.containerNotHonouredYet(fmt.Sprintf("spec.initContainers[%d]", i), &s.InitContainers[i])
	}
	for i := range s.Containers {
		c.containerNotHonouredYet(fmt.Sprintf("spec.containers[%d]", i), &s.Containers[i])
	}
	for i, v := range s.Volumes {
		c.volumeNotHonouredYet(fmt.Sprintf("spec.volumes[%d]", i), &v.VolumeSource)
	}
}

func (c *checker) containerNotHonouredYet(p string, ctr *v1.Container) {
	const why = "not honoured by podsup yet: "
	for _, kind := range []struct {
		name string
		list v1.ResourceList
	}{{"limits", ctr.Resources.Limits}, {"requests", ctr.Resources.Requests}} {
		for _, name := range slices.Sorted(maps.Keys(kind.list)) {
			if name == v1.ResourceEphemeralStorage && kind.name == "limits" {
				c.warn(fmt.Sprintf("%s.resources.limits[%s]", p, name), why+"a container over its ephemeral-storage limit is not evicted")
			}
		}
	}
	if ctr.StdinOnce {
		c.warn(p+".stdinOnce", why+"stdin stays open after the first attach ends")
	}
	for i, m := range ctr.VolumeMounts {
		if len(m.BindMountOptions) > 0 {
			c.unsupported(fmt.Sprintf("%s.volumeMounts[%d].bindMountOptions", p, i), "mount options are not applied yet")
		}
	}
	for _, probe := range []struct {
		name string
		p    *v1.Probe
	}{{"livenessProbe", ctr.LivenessProbe}, {"readinessProbe", ctr.ReadinessProbe}, {"startupProbe", ctr.StartupProbe}} {
		if probe.p == nil {
			continue
		}
		if g := probe.p.HTTPGet; g != nil && g.Protocol != nil {
			c.warn(p+"."+probe.name+".httpGet.protocol", why+"probes speak HTTP/1.1")
		}
		if g := probe.p.GRPC; g != nil && g.Mode != nil {
			c.warn(p+"."+probe.name+".grpc.mode", why+"the probe connects in the default mode")
		}
	}
	if l := ctr.Lifecycle; l != nil {
		for _, hook := range []struct {
			name string
			h    *v1.LifecycleHandler
		}{{"postStart", l.PostStart}, {"preStop", l.PreStop}} {
			if hook.h != nil && hook.h.HTTPGet != nil && hook.h.HTTPGet.Protocol != nil {
				c.warn(p+".lifecycle."+hook.name+".httpGet.protocol", why+"hooks speak HTTP/1.1")
			}
		}
	}
	if sc := ctr.SecurityContext; sc != nil && sc.WindowsOptions != nil {
		c.warn(p+".securityContext.windowsOptions", "ignored: podsup runs Linux containers only")
	}
}

func (c *checker) volumeNotHonouredYet(p string, vs *v1.VolumeSource) {
	const why = "not honoured by podsup yet: "
	if e := vs.EmptyDir; e != nil && e.Mode != nil {
		c.warn(p+".emptyDir.mode", why+"the directory's mode is 0777")
	}
	owner := func(kp string, defaultUser *int64, items []v1.KeyToPath) {
		if defaultUser != nil {
			c.warn(kp+".defaultUser", why+"files are owned by root")
		}
		for i, it := range items {
			if it.User != nil {
				c.warn(fmt.Sprintf("%s.items[%d].user", kp, i), why+"files are owned by root")
			}
		}
	}
	if cm := vs.ConfigMap; cm != nil {
		owner(p+".configMap", cm.DefaultUser, cm.Items)
	}
	if s := vs.Secret; s != nil {
		owner(p+".secret", s.DefaultUser, s.Items)
	}
	if d := vs.DownwardAPI; d != nil {
		c.downwardOwner(p+".downwardAPI", d.DefaultUser, d.Items)
	}
	if pr := vs.Projected; pr != nil {
		if pr.DefaultUser != nil {
			c.warn(p+".projected.defaultUser", why+"files are owned by root")
		}
		for i, src := range pr.Sources {
			sp := fmt.Sprintf("%s.projected.sources[%d]", p, i)
			if src.ConfigMap != nil {
				owner(sp+".configMap", nil, src.ConfigMap.Items)
			}
			if src.Secret != nil {
				owner(sp+".secret", nil, src.Secret.Items)
			}
			if src.DownwardAPI != nil {
				c.downwardOwner(sp+".downwardAPI", nil, src.DownwardAPI.Items)
			}
		}
	}
}

func (c *checker) downwardOwner(p string, defaultUser *int64, items []v1.DownwardAPIVolumeFile) {
	if defaultUser != nil {
		c.warn(p+".defaultUser", "not honoured by podsup yet: files are owned by root")
	}
	for i, it := range items {
		if it.User != nil {
			c.warn(fmt.Sprintf("%s.items[%d].user", p, i), "not honoured by podsup yet: files are owned by root")
		}
	}
}

// ignoredWithoutCluster warns of the fields that only a cluster gives a
// meaning to: scheduling, Windows, eviction through the API.
func (c *checker) ignoredWithoutCluster(s *v1.PodSpec) {
	const why = "ignored: static pods are not scheduled"
	if len(s.NodeSelector) > 0 {
		c.warn("spec.nodeSelector", "ignored: podsup does not check the node's labels; the pod runs where its manifest is")
	}
	if s.Affinity != nil {
		c.warn("spec.affinity", "ignored: podsup does not check the node's labels or other pods; the pod runs where its manifest is")
	}
	if len(s.TopologySpreadConstraints) > 0 {
		c.warn("spec.topologySpreadConstraints", why)
	}
	if len(s.SchedulingGates) > 0 {
		c.warn("spec.schedulingGates", why+": the pod starts at once")
	}
	if s.SchedulingGroup != nil {
		c.warn("spec.schedulingGroup", why)
	}
	if s.SchedulerName != "" && s.SchedulerName != v1.DefaultSchedulerName {
		c.warn("spec.schedulerName", why)
	}
	if s.PreemptionPolicy != nil {
		c.warn("spec.preemptionPolicy", "ignored: podsup preempts no pod")
	}
	if len(s.Overhead) > 0 {
		c.warn("spec.overhead", "ignored: the overhead of a runtime class is not accounted")
	}
	if len(s.EvictionResponders) > 0 {
		c.warn("spec.evictionResponders", "ignored: no eviction request reaches a static pod")
	}
	if s.DeprecatedServiceAccount != "" {
		c.warn("spec.serviceAccount", "static pods get no service account token; the name is only shown")
	}
	if sc := s.SecurityContext; sc != nil && sc.WindowsOptions != nil {
		c.warn("spec.securityContext.windowsOptions", "ignored: podsup runs Linux pods only")
	}
}
