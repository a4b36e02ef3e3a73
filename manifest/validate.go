package manifest

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/moby/sys/signal"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// checker collects the problems of one object.
type checker struct {
	origin, object string
	errs           ErrorList
	warnings       []*Error
}

func (c *checker) fail(path, format string, args ...any) {
	c.errs = appendCapped(c.errs, c.origin, func() *Error { return newError(c.origin, c.object, path, format, args...) })
}

func (c *checker) warn(path, format string, args ...any) {
	c.warnings = appendCapped(c.warnings, c.origin, func() *Error { return newError(c.origin, c.object, path, format, args...) })
}

// unsupported reports a field podsup cannot honour, saying why, rather than
// silently running a pod that is not what its author asked for.
func (c *checker) unsupported(path, why string) {
	c.fail(path, "not supported by podsup: %s", why)
}

func (c *checker) messages(path string, msgs []string) {
	for _, m := range msgs {
		c.fail(path, "%s", m)
	}
}

// uniqueLabel checks a name that must be a DNS label not yet in seen, and
// adds it to seen.
func (c *checker) uniqueLabel(p, name string, seen map[string]bool, dupMsg string) {
	switch {
	case name == "":
		c.fail(p, "required")
	case seen[name]:
		c.fail(p, "%q %s", name, dupMsg)
	default:
		c.messages(p, validation.IsDNS1123Label(name))
	}
	seen[name] = true
}

func (c *checker) fieldErrors(errs field.ErrorList) {
	for _, e := range errs {
		c.fail(e.Field, "%s", e.ErrorBody())
	}
}

// ValidatePod checks a defaulted pod. It returns every problem, and warnings
// for fields that are accepted but have no effect without a cluster.
func ValidatePod(origin string, pod *v1.Pod) (ErrorList, []*Error) {
	c := &checker{origin: origin, object: describe("Pod", pod.Name)}
	c.meta(&pod.ObjectMeta, true)
	c.podSpec(&pod.Spec)
	c.appArmorAnnotations(pod)
	c.hugePageVolumes(pod)
	return c.errs, c.warnings
}

func (c *checker) meta(m *metav1.ObjectMeta, isPod bool) {
	switch {
	case m.Name == "":
		c.fail("metadata.name", "required")
	case isPod:
		// The pod runs as <name>-<node>; both must fit a DNS subdomain.
		c.messages("metadata.name", validation.IsDNS1123Subdomain(m.Name))
	default:
		c.messages("metadata.name", validation.IsDNS1123Subdomain(m.Name))
	}
	if m.Namespace != "" {
		c.messages("metadata.namespace", validation.IsDNS1123Label(m.Namespace))
	}
	c.fieldErrors(metavalidation.ValidateLabels(m.Labels, field.NewPath("metadata", "labels")))
	c.fieldErrors(apivalidation.ValidateAnnotations(m.Annotations, field.NewPath("metadata", "annotations")))
}

func (c *checker) podSpec(s *v1.PodSpec) {
	if len(s.Containers) == 0 {
		c.fail("spec.containers", "required: a pod needs at least one container")
	}
	switch s.RestartPolicy {
	case v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever:
	default:
		c.fail("spec.restartPolicy", "%q is not one of Always, OnFailure, Never", s.RestartPolicy)
	}
	switch s.DNSPolicy {
	case v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet, v1.DNSDefault:
	case v1.DNSNone:
		if s.DNSConfig == nil {
			c.fail("spec.dnsConfig", "required when dnsPolicy is None")
		}
	default:
		c.fail("spec.dnsPolicy", "%q is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None", s.DNSPolicy)
	}
	c.dnsConfig(s.DNSConfig)
	if g := s.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		c.fail("spec.terminationGracePeriodSeconds", "must not be negative")
	}
	if d := s.ActiveDeadlineSeconds; d != nil && *d < 1 {
		c.fail("spec.activeDeadlineSeconds", "must be at least 1")
	}
	if s.Hostname != "" {
		c.messages("spec.hostname", validation.IsDNS1123Label(s.Hostname))
	}
	if s.Subdomain != "" {
		c.messages("spec.subdomain", validation.IsDNS1123Label(s.Subdomain))
	}
	if s.ShareProcessNamespace != nil && *s.ShareProcessNamespace && s.HostPID {
		c.fail("spec.shareProcessNamespace", "cannot be true together with hostPID")
	}
	if s.HostUsers != nil && !*s.HostUsers {
		// As the apiserver validates it: a pod in a user namespace of its
		// own cannot share the host's other namespaces.
		for _, shared := range []struct {
			on   bool
			name string
		}{{s.HostNetwork, "hostNetwork"}, {s.HostPID, "hostPID"}, {s.HostIPC, "hostIPC"}} {
			if shared.on {
				c.fail("spec.hostUsers", "false cannot be combined with %s: true", shared.name)
			}
		}
	}
	for i, a := range s.HostAliases {
		if _, err := netip.ParseAddr(a.IP); err != nil {
			c.fail(fmt.Sprintf("spec.hostAliases[%d].ip", i), "%q is not an IP address", a.IP)
		}
		for j, h := range a.Hostnames {
			c.messages(fmt.Sprintf("spec.hostAliases[%d].hostnames[%d]", i, j), validation.IsDNS1123Subdomain(h))
		}
	}
	c.podSecurity(s)
	c.unsupportedPodFields(s)
	c.podResources(s)
	c.notHonouredYet(s)
	c.ignoredWithoutCluster(s)

	volumes := c.volumes(s.Volumes)
	names := map[string]bool{}
	hostPorts := map[string]string{}
	for i := range s.InitContainers {
		p := fmt.Sprintf("spec.initContainers[%d]", i)
		ctr := &s.InitContainers[i]
		c.container(p, ctr, s, volumes, names, hostPorts)
		c.restartPolicy(p, ctr)
		sidecar := ctr.RestartPolicy != nil && *ctr.RestartPolicy == v1.ContainerRestartPolicyAlways
		if sidecar && len(ctr.RestartPolicyRules) > 0 {
			c.fail(p+".restartPolicyRules", "not allowed on a sidecar (restartPolicy Always): it is restarted whatever its exit code")
		}
		for _, probe := range []struct {
			name string
			p    *v1.Probe
		}{{"livenessProbe", ctr.LivenessProbe}, {"readinessProbe", ctr.ReadinessProbe}, {"startupProbe", ctr.StartupProbe}} {
			if probe.p != nil && !sidecar {
				c.fail(p+"."+probe.name, "init containers may not have probes unless they are sidecars (restartPolicy: Always)")
			}
		}
	}
	for i := range s.Containers {
		p := fmt.Sprintf("spec.containers[%d]", i)
		c.container(p, &s.Containers[i], s, volumes, names, hostPorts)
		c.restartPolicy(p, &s.Containers[i])
	}
}

// maxRestartRules and maxRestartRuleExitCodes are the apiserver's limits.
const (
	maxRestartRules         = 20
	maxRestartRuleExitCodes = 255
)

// restartPolicy checks a container's own restart policy and rules
// (Kubernetes 1.35).
func (c *checker) restartPolicy(p string, ctr *v1.Container) {
	if rp := ctr.RestartPolicy; rp != nil {
		switch *rp {
		case v1.ContainerRestartPolicyAlways, v1.ContainerRestartPolicyOnFailure, v1.ContainerRestartPolicyNever:
		default:
			c.fail(p+".restartPolicy", "%q is not one of Always, OnFailure, Never", *rp)
		}
	}
	if len(ctr.RestartPolicyRules) == 0 {
		return
	}
	if ctr.RestartPolicy == nil {
		c.fail(p+".restartPolicy", "required when restartPolicyRules are set")
	}
	if len(ctr.RestartPolicyRules) > maxRestartRules {
		c.fail(p+".restartPolicyRules", "at most %d rules", maxRestartRules)
	}
	for i, r := range ctr.RestartPolicyRules {
		rp := fmt.Sprintf("%s.restartPolicyRules[%d]", p, i)
		switch r.Action {
		case v1.ContainerRestartRuleActionRestart:
		case v1.ContainerRestartRuleActionRestartAllContainers:
			c.unsupported(rp+".action", "RestartAllContainers (alpha in Kubernetes 1.35) is not implemented")
		default:
			c.fail(rp+".action", "%q is not Restart", r.Action)
		}
		if r.ExitCodes == nil {
			c.fail(rp+".exitCodes", "required")
			continue
		}
		switch r.ExitCodes.Operator {
		case v1.ContainerRestartRuleOnExitCodesOpIn, v1.ContainerRestartRuleOnExitCodesOpNotIn:
		default:
			c.fail(rp+".exitCodes.operator", "%q is not one of In, NotIn", r.ExitCodes.Operator)
		}
		if len(r.ExitCodes.Values) > maxRestartRuleExitCodes {
			c.fail(rp+".exitCodes.values", "at most %d exit codes", maxRestartRuleExitCodes)
		}
	}
}

func (c *checker) unsupportedPodFields(s *v1.PodSpec) {
	if len(s.EphemeralContainers) > 0 {
		c.unsupported("spec.ephemeralContainers", "ephemeral containers are added through an apiserver")
	}
	if s.RuntimeClassName != nil {
		c.unsupported("spec.runtimeClassName", "podsup runs every pod with containerd's runc runtime")
	}
	if s.OS != nil && s.OS.Name != v1.Linux {
		c.unsupported("spec.os.name", "podsup runs Linux pods only")
	}
	if len(s.ResourceClaims) > 0 {
		c.unsupported("spec.resourceClaims", "dynamic resource allocation needs a cluster")
	}
	if len(s.ReadinessGates) > 0 {
		c.unsupported("spec.readinessGates", "no controller exists to set their conditions without a cluster")
	}
	if s.ServiceAccountName != "" {
		c.warn("spec.serviceAccountName", "static pods get no service account token; the name is only shown")
	}
	if s.AutomountServiceAccountToken != nil && *s.AutomountServiceAccountToken {
		c.warn("spec.automountServiceAccountToken", "static pods get no service account token")
	}
	if s.PriorityClassName != "" && s.PriorityClassName != SystemNodeCritical && s.PriorityClassName != SystemClusterCritical && s.Priority == nil {
		c.warn("spec.priorityClassName", "%q is not a built-in class; without an apiserver its priority is 0 (set spec.priority)", s.PriorityClassName)
	}
}

func (c *checker) dnsConfig(d *v1.PodDNSConfig) {
	if d == nil {
		return
	}
	if len(d.Nameservers) > 3 {
		c.fail("spec.dnsConfig.nameservers", "at most 3 nameservers")
	}
	for i, ns := range d.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			c.fail(fmt.Sprintf("spec.dnsConfig.nameservers[%d]", i), "%q is not an IP address", ns)
		}
	}
	if len(d.Searches) > 32 {
		c.fail("spec.dnsConfig.searches", "at most 32 search domains")
	}
	for i, s := range d.Searches {
		c.messages(fmt.Sprintf("spec.dnsConfig.searches[%d]", i), validation.IsDNS1123Subdomain(strings.TrimSuffix(s, ".")))
	}
	for i, o := range d.Options {
		if o.Name == "" {
			c.fail(fmt.Sprintf("spec.dnsConfig.options[%d].name", i), "required")
		}
	}
}

func (c *checker) podSecurity(s *v1.PodSpec) {
	sc := s.SecurityContext
	if sc == nil {
		return
	}
	c.ids("spec.securityContext", sc.RunAsUser, sc.RunAsGroup)
	if sc.FSGroup != nil && *sc.FSGroup < 0 {
		c.fail("spec.securityContext.fsGroup", "must not be negative")
	}
	if p := sc.SupplementalGroupsPolicy; p != nil && *p != v1.SupplementalGroupsPolicyMerge && *p != v1.SupplementalGroupsPolicyStrict {
		c.fail("spec.securityContext.supplementalGroupsPolicy", "%q is not one of Merge, Strict", *p)
	}
	for i, g := range sc.SupplementalGroups {
		if g < 0 {
			c.fail(fmt.Sprintf("spec.securityContext.supplementalGroups[%d]", i), "must not be negative")
		}
	}
	for i, sysctl := range sc.Sysctls {
		p := fmt.Sprintf("spec.securityContext.sysctls[%d].name", i)
		if !validSysctlName(sysctl.Name) {
			c.fail(p, "%q is not a sysctl name", sysctl.Name)
		} else if s.HostNetwork && (strings.HasPrefix(sysctl.Name, "net.") || strings.HasPrefix(sysctl.Name, "net/")) {
			c.fail(p, "network sysctls cannot be set on a hostNetwork pod: they would change the host")
		} else if s.HostIPC && (strings.HasPrefix(sysctl.Name, "kernel.shm") || strings.HasPrefix(sysctl.Name, "kernel.msg") || strings.HasPrefix(sysctl.Name, "kernel.sem") || strings.HasPrefix(sysctl.Name, "fs.mqueue.")) {
			c.fail(p, "IPC sysctls cannot be set on a hostIPC pod: they would change the host")
		}
	}
	c.seccomp("spec.securityContext.seccompProfile", sc.SeccompProfile)
	c.appArmor("spec.securityContext.appArmorProfile", sc.AppArmorProfile)
}

func validSysctlName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '.' || r == '/' }) {
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '*') {
				return false
			}
		}
	}
	return !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, ".")
}

func (c *checker) ids(p string, user, group *int64) {
	if user != nil && *user < 0 {
		c.fail(p+".runAsUser", "must not be negative")
	}
	if group != nil && *group < 0 {
		c.fail(p+".runAsGroup", "must not be negative")
	}
}

func (c *checker) seccomp(p string, sp *v1.SeccompProfile) {
	if sp == nil {
		return
	}
	if name, ok := c.securityProfile(p, string(sp.Type), sp.LocalhostProfile, "a file under the seccomp profile directory"); ok && !relativePath(name) {
		c.fail(p+".localhostProfile", "must be a relative path without '..'")
	}
}

// securityProfile checks the type of a seccomp or AppArmor profile and that
// a localhostProfile comes with type Localhost, and only then; it returns
// the Localhost profile's name when there is one.
func (c *checker) securityProfile(p, typ string, localhost *string, what string) (string, bool) {
	switch typ {
	case "RuntimeDefault", "Unconfined":
		if localhost != nil {
			c.fail(p+".localhostProfile", "only allowed with type Localhost")
		}
	case "Localhost":
		if localhost == nil || strings.TrimSpace(*localhost) == "" {
			c.fail(p+".localhostProfile", "required with type Localhost: %s", what)
			return "", false
		}
		return *localhost, true
	default:
		c.fail(p+".type", "%q is not one of RuntimeDefault, Unconfined, Localhost", typ)
	}
	return "", false
}

// relativePath reports whether p is a non-empty relative path that cannot
// climb out of the directory it is joined to.
func relativePath(p string) bool {
	if p == "" || path.IsAbs(p) {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return false
		}
	}
	return true
}

// maxImageRef bounds an image reference: a repository name is at most 255
// bytes, a tag 128 and a digest about 135, so a longer one can never be
// pulled, and would only fill statuses and events with its text.
const maxImageRef = 1024

// imageRef checks an image reference, of a container or an image volume.
func (c *checker) imageRef(p, ref string) {
	if strings.TrimSpace(ref) == "" {
		c.fail(p, "required")
	} else if len(ref) > maxImageRef {
		c.fail(p, "%d bytes long; an image reference is at most %d", len(ref), maxImageRef)
	} else if strings.ContainsAny(ref, " \t\n") {
		c.fail(p, "%q contains white space", ref)
	}
}

func (c *checker) pullPolicy(p string, policy v1.PullPolicy) {
	switch policy {
	case v1.PullAlways, v1.PullIfNotPresent, v1.PullNever:
	default:
		c.fail(p, "%q is not one of Always, IfNotPresent, Never", policy)
	}
}

func (c *checker) container(p string, ctr *v1.Container, s *v1.PodSpec, volumes map[string]bool, names map[string]bool, hostPorts map[string]string) {
	c.uniqueLabel(p+".name", ctr.Name, names, "is used by another container of this pod")
	c.imageRef(p+".image", ctr.Image)
	c.pullPolicy(p+".imagePullPolicy", ctr.ImagePullPolicy)
	if ctr.WorkingDir != "" && !path.IsAbs(ctr.WorkingDir) {
		c.fail(p+".workingDir", "must be an absolute path")
	}
	c.ports(p, ctr, s.HostNetwork, hostPorts)
	c.env(p, ctr)
	c.resources(p+".resources", &ctr.Resources)
	c.mounts(p, ctr, volumes)
	if len(ctr.VolumeDevices) > 0 {
		c.unsupported(p+".volumeDevices", "block devices come from persistent volumes, which need a cluster")
	}
	if len(ctr.ResizePolicy) > 0 {
		c.warn(p+".resizePolicy", "ignored: podsup recreates a container whose resources change")
	}
	c.probe(p+".livenessProbe", ctr.LivenessProbe, ctr, true)
	c.probe(p+".readinessProbe", ctr.ReadinessProbe, ctr, false)
	c.probe(p+".startupProbe", ctr.StartupProbe, ctr, true)
	if l := ctr.Lifecycle; l != nil {
		c.hook(p+".lifecycle.postStart", l.PostStart, ctr)
		c.hook(p+".lifecycle.preStop", l.PreStop, ctr)
		if l.StopSignal != nil {
			if _, err := signal.ParseSignal(string(*l.StopSignal)); err != nil || !strings.HasPrefix(string(*l.StopSignal), "SIG") {
				c.fail(p+".lifecycle.stopSignal", "%q is not a signal name such as SIGTERM or SIGUSR1", *l.StopSignal)
			}
		}
	}
	c.containerSecurity(p+".securityContext", ctr.SecurityContext)
}

func (c *checker) ports(p string, ctr *v1.Container, hostNetwork bool, hostPorts map[string]string) {
	portNames := map[string]bool{}
	for i, port := range ctr.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", p, i)
		c.messages(pp+".containerPort", validation.IsValidPortNum(int(port.ContainerPort)))
		if port.HostPort != 0 {
			c.messages(pp+".hostPort", validation.IsValidPortNum(int(port.HostPort)))
			if hostNetwork && port.HostPort != port.ContainerPort {
				c.fail(pp+".hostPort", "must equal containerPort in a hostNetwork pod")
			}
			key := fmt.Sprintf("%s/%d/%s", port.HostIP, port.HostPort, port.Protocol)
			if other, dup := hostPorts[key]; dup {
				c.fail(pp+".hostPort", "%d/%s is already used by %s", port.HostPort, port.Protocol, other)
			}
			hostPorts[key] = pp
		}
		switch port.Protocol {
		case v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP:
		default:
			c.fail(pp+".protocol", "%q is not one of TCP, UDP, SCTP", port.Protocol)
		}
		if port.HostIP != "" {
			if _, err := netip.ParseAddr(port.HostIP); err != nil {
				c.fail(pp+".hostIP", "%q is not an IP address", port.HostIP)
			}
		}
		if port.Name != "" {
			c.messages(pp+".name", validation.IsValidPortName(port.Name))
			if portNames[port.Name] {
				c.fail(pp+".name", "%q is used by another port of this container", port.Name)
			}
			portNames[port.Name] = true
		}
	}
}

func (c *checker) env(p string, ctr *v1.Container) {
	for i, e := range ctr.Env {
		ep := fmt.Sprintf("%s.env[%d]", p, i)
		if e.Name == "" {
			c.fail(ep+".name", "required")
		} else {
			c.messages(ep+".name", validation.IsRelaxedEnvVarName(e.Name))
		}
		if e.ValueFrom == nil {
			continue
		}
		if e.Value != "" {
			c.fail(ep+".valueFrom", "may not be set together with value")
		}
		vf := e.ValueFrom
		sources := 0
		if vf.FieldRef != nil {
			sources++
			c.fieldRef(ep+".valueFrom.fieldRef", vf.FieldRef, true)
		}
		if vf.ResourceFieldRef != nil {
			sources++
			c.resourceFieldRef(ep+".valueFrom.resourceFieldRef", vf.ResourceFieldRef, false)
		}
		if r := vf.ConfigMapKeyRef; r != nil {
			sources++
			c.keyRef(ep+".valueFrom.configMapKeyRef", r.Name, r.Key)
		}
		if r := vf.SecretKeyRef; r != nil {
			sources++
			c.keyRef(ep+".valueFrom.secretKeyRef", r.Name, r.Key)
		}
		if vf.FileKeyRef != nil {
			sources++
			c.unsupported(ep+".valueFrom.fileKeyRef", "use a configMapKeyRef to a ConfigMap in the manifest directory")
		}
		if sources != 1 {
			c.fail(ep+".valueFrom", "must name exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef")
		}
	}
	for i, ef := range ctr.EnvFrom {
		ep := fmt.Sprintf("%s.envFrom[%d]", p, i)
		switch {
		case ef.ConfigMapRef != nil && ef.SecretRef == nil:
			c.refName(ep+".configMapRef.name", ef.ConfigMapRef.Name)
		case ef.SecretRef != nil && ef.ConfigMapRef == nil:
			c.refName(ep+".secretRef.name", ef.SecretRef.Name)
		default:
			c.fail(ep, "must name exactly one of configMapRef, secretRef")
		}
		if ef.Prefix != "" {
			c.messages(ep+".prefix", validation.IsRelaxedEnvVarName(ef.Prefix))
		}
	}
}

func (c *checker) keyRef(p, name, key string) {
	c.refName(p+".name", name)
	if key == "" {
		c.fail(p+".key", "required")
	} else {
		c.messages(p+".key", validation.IsConfigMapKey(key))
	}
}

func (c *checker) refName(p, name string) {
	if name == "" {
		c.fail(p, "required")
		return
	}
	c.messages(p, validation.IsDNS1123Subdomain(name))
}

// fieldRefPaths are the pod fields the downward API exposes. Labels and
// annotations also take a single key: metadata.labels['app'].
var fieldRefPaths = map[string]bool{
	"metadata.name": true, "metadata.namespace": true, "metadata.uid": true,
	"metadata.labels": true, "metadata.annotations": true,
	"spec.nodeName": true, "spec.serviceAccountName": true,
	"status.podIP": true, "status.podIPs": true, "status.hostIP": true, "status.hostIPs": true,
}

func (c *checker) fieldRef(p string, f *v1.ObjectFieldSelector, env bool) {
	if f.APIVersion != "v1" {
		c.fail(p+".apiVersion", "must be v1")
	}
	fp := f.FieldPath
	if base, _, ok := strings.Cut(fp, "['"); ok && strings.HasSuffix(fp, "']") {
		if base != "metadata.labels" && base != "metadata.annotations" {
			c.fail(p+".fieldPath", "%q: only labels and annotations take a key", fp)
		}
		return
	}
	if !fieldRefPaths[fp] {
		c.fail(p+".fieldPath", "%q is not supported; use one of metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs, status.hostIP, status.hostIPs", fp)
		return
	}
	if env && (fp == "metadata.labels" || fp == "metadata.annotations") {
		c.fail(p+".fieldPath", "%q needs a key in an environment variable, such as %s['app']", fp, fp)
	}
}

var resourceFieldRefs = map[string]bool{
	"limits.cpu": true, "limits.memory": true, "limits.ephemeral-storage": true,
	"requests.cpu": true, "requests.memory": true, "requests.ephemeral-storage": true,
}

func (c *checker) resourceFieldRef(p string, r *v1.ResourceFieldSelector, needContainer bool) {
	if needContainer && r.ContainerName == "" {
		c.fail(p+".containerName", "required in a volume")
	}
	if !resourceFieldRefs[r.Resource] {
		c.fail(p+".resource", "%q is not one of limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, requests.memory, requests.ephemeral-storage", r.Resource)
	}
	if r.Divisor.Sign() < 0 {
		c.fail(p+".divisor", "must not be negative")
	}
}

func (c *checker) resources(p string, r *v1.ResourceRequirements) {
	check := func(kind string, list v1.ResourceList) {
		for name, q := range list {
			rp := fmt.Sprintf("%s.%s[%s]", p, kind, name)
			switch {
			case name == v1.ResourceCPU, name == v1.ResourceMemory, name == v1.ResourceEphemeralStorage,
				strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix):
			default:
				c.unsupported(rp, "extended resources need a device plugin")
			}
			if q.Sign() < 0 {
				c.fail(rp, "must not be negative")
			}
			if q.Cmp(*maxQuantity(name)) > 0 {
				c.fail(rp, "%s is more than the largest amount podsup can apply, %s", q.String(), maxQuantity(name).String())
			}
		}
	}
	check("limits", r.Limits)
	check("requests", r.Requests)
	c.hugePageResources(p, r)
	for name, req := range r.Requests {
		if limit, ok := r.Limits[name]; ok && req.Cmp(limit) > 0 {
			c.fail(fmt.Sprintf("%s.requests[%s]", p, name), "%s is more than the limit %s", req.String(), limit.String())
		}
	}
	if len(r.Claims) > 0 {
		c.unsupported(p+".claims", "dynamic resource allocation needs a cluster")
	}
}

// podResources checks pod-level resources (Kubernetes 1.34) as the
// apiserver does: CPU and memory only, requests within limits, no
// container's limit above the pod's, and the containers' requests together
// within the pod's.
func (c *checker) podResources(s *v1.PodSpec) {
	r := s.Resources
	if r == nil {
		return
	}
	for _, list := range []struct {
		kind string
		v1.ResourceList
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for _, name := range slices.Sorted(maps.Keys(list.ResourceList)) {
			if name != v1.ResourceCPU && name != v1.ResourceMemory {
				c.unsupported(fmt.Sprintf("spec.resources.%s[%s]", list.kind, name), "pod-level resources other than cpu and memory")
			}
		}
	}
	c.resources("spec.resources", r)
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		sum := resource.Quantity{}
		for i, ctr := range s.Containers {
			if q, ok := ctr.Resources.Requests[name]; ok {
				sum.Add(q)
			}
			if podLimit, ok := r.Limits[name]; ok {
				if limit, ok := ctr.Resources.Limits[name]; ok && limit.Cmp(podLimit) > 0 {
					c.fail(fmt.Sprintf("spec.containers[%d].resources.limits[%s]", i, name), "%s is more than the pod's limit %s", limit.String(), podLimit.String())
				}
			}
		}
		if podRequest, ok := r.Requests[name]; ok && sum.Cmp(podRequest) > 0 {
			c.fail(fmt.Sprintf("spec.resources.requests[%s]", name), "%s is less than the containers request together, %s", podRequest.String(), sum.String())
		}
	}
}

// maxQuantity is the largest amount of a resource that fits the int64 of a
// cgroup setting: millicores for CPU, bytes for the rest. A larger one would
// silently saturate, so "memory: 99999999999999999999Ei" meant no limit at all.
func maxQuantity(name v1.ResourceName) *resource.Quantity {
	if name == v1.ResourceCPU {
		return resource.NewMilliQuantity(math.MaxInt64, resource.DecimalSI)
	}
	return resource.NewQuantity(math.MaxInt64, resource.BinarySI)
}

func (c *checker) mounts(p string, ctr *v1.Container, volumes map[string]bool) {
	paths := map[string]bool{}
	for i, m := range ctr.VolumeMounts {
		mp := fmt.Sprintf("%s.volumeMounts[%d]", p, i)
		if !volumes[m.Name] {
			c.fail(mp+".name", "volume %q is not defined in spec.volumes", m.Name)
		}
		switch {
		case m.MountPath == "":
			c.fail(mp+".mountPath", "required")
		case !path.IsAbs(m.MountPath):
			c.fail(mp+".mountPath", "%q must be an absolute path", m.MountPath)
		case paths[path.Clean(m.MountPath)]:
			c.fail(mp+".mountPath", "%q is mounted twice", m.MountPath)
		}
		paths[path.Clean(m.MountPath)] = true
		if m.SubPath != "" && m.SubPathExpr != "" {
			c.fail(mp+".subPathExpr", "may not be set together with subPath")
		}
		if m.SubPath != "" && !relativePath(m.SubPath) {
			c.fail(mp+".subPath", "%q must be a relative path without '..'", m.SubPath)
		}
		if m.SubPathExpr != "" && !relativePath(m.SubPathExpr) {
			c.fail(mp+".subPathExpr", "%q must be a relative path without '..'", m.SubPathExpr)
		}
		if mode := m.MountPropagation; mode != nil {
			switch *mode {
			case v1.MountPropagationNone, v1.MountPropagationHostToContainer:
			case v1.MountPropagationBidirectional:
				if sc := ctr.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
					c.fail(mp+".mountPropagation", "Bidirectional requires a privileged container")
				}
			default:
				c.fail(mp+".mountPropagation", "%q is not one of None, HostToContainer, Bidirectional", *mode)
			}
		}
		if m.RecursiveReadOnly != nil && *m.RecursiveReadOnly != v1.RecursiveReadOnlyDisabled {
			c.unsupported(mp+".recursiveReadOnly", "recursive read-only mounts")
		}
	}
}

func (c *checker) probe(p string, pr *v1.Probe, ctr *v1.Container, mustSucceedOnce bool) {
	if pr == nil {
		return
	}
	c.handler(p, &pr.ProbeHandler, ctr, true)
	nonNegative := map[string]int32{
		"initialDelaySeconds": pr.InitialDelaySeconds,
	}
	atLeastOne := map[string]int32{
		"timeoutSeconds": pr.TimeoutSeconds, "periodSeconds": pr.PeriodSeconds,
		"successThreshold": pr.SuccessThreshold, "failureThreshold": pr.FailureThreshold,
	}
	for name, v := range nonNegative {
		if v < 0 {
			c.fail(p+"."+name, "must not be negative")
		}
	}
	for _, name := range sortedKeys(atLeastOne) {
		if atLeastOne[name] < 1 {
			c.fail(p+"."+name, "must be at least 1")
		}
	}
	if mustSucceedOnce && pr.SuccessThreshold != 1 {
		c.fail(p+".successThreshold", "must be 1 for liveness and startup probes")
	}
	if g := pr.TerminationGracePeriodSeconds; g != nil {
		switch {
		case !mustSucceedOnce:
			c.fail(p+".terminationGracePeriodSeconds", "only liveness and startup probes may set it")
		case *g < 1:
			c.fail(p+".terminationGracePeriodSeconds", "must be at least 1")
		}
	}
}

// handler checks a probe or hook action. Probes allow exec, httpGet,
// tcpSocket and grpc; hooks allow exec, httpGet and sleep.
func (c *checker) handler(p string, h *v1.ProbeHandler, ctr *v1.Container, probe bool) {
	n := 0
	if h.Exec != nil {
		n++
		if len(h.Exec.Command) == 0 {
			c.fail(p+".exec.command", "required")
		}
	}
	if g := h.HTTPGet; g != nil {
		n++
		c.port(p+".httpGet.port", g.Port, ctr)
		if g.Scheme != v1.URISchemeHTTP && g.Scheme != v1.URISchemeHTTPS {
			c.fail(p+".httpGet.scheme", "%q is not one of HTTP, HTTPS", g.Scheme)
		}
		if g.Host != "" && strings.ContainsAny(g.Host, "/ ") {
			c.fail(p+".httpGet.host", "%q is not a host name or address", g.Host)
		}
		for i, hdr := range g.HTTPHeaders {
			c.messages(fmt.Sprintf("%s.httpGet.httpHeaders[%d].name", p, i), validation.IsHTTPHeaderName(hdr.Name))
		}
	}
	if t := h.TCPSocket; t != nil {
		n++
		if !probe {
			c.unsupported(p+".tcpSocket", "a tcpSocket hook does nothing in Kubernetes either; use exec or httpGet")
		}
		c.port(p+".tcpSocket.port", t.Port, ctr)
	}
	if g := h.GRPC; g != nil {
		n++
		c.messages(p+".grpc.port", validation.IsValidPortNum(int(g.Port)))
	}
	if n != 1 {
		kinds := "exec, httpGet, tcpSocket, grpc"
		if !probe {
			kinds = "exec, httpGet, sleep"
		}
		c.fail(p, "must have exactly one of %s", kinds)
	}
}

func (c *checker) hook(p string, h *v1.LifecycleHandler, ctr *v1.Container) {
	if h == nil {
		return
	}
	if h.Sleep != nil {
		if h.Exec != nil || h.HTTPGet != nil || h.TCPSocket != nil {
			c.fail(p, "must have exactly one of exec, httpGet, sleep")
		}
		if h.Sleep.Seconds < 0 {
			c.fail(p+".sleep.seconds", "must not be negative")
		}
		return
	}
	c.handler(p, &v1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}, ctr, false)
}

func (c *checker) port(p string, port intstr.IntOrString, ctr *v1.Container) {
	if port.Type == intstr.String {
		if _, ok := ResolvePort(port, ctr); !ok {
			c.fail(p, "%q names no port of this container", port.StrVal)
		}
		return
	}
	c.messages(p, validation.IsValidPortNum(int(port.IntVal)))
}

func (c *checker) containerSecurity(p string, sc *v1.SecurityContext) {
	if sc == nil {
		return
	}
	c.ids(p, sc.RunAsUser, sc.RunAsGroup)
	if sc.Privileged != nil && *sc.Privileged && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		c.fail(p+".allowPrivilegeEscalation", "cannot be false in a privileged container")
	}
	if caps := sc.Capabilities; caps != nil {
		for i, cp := range caps.Add {
			c.capability(fmt.Sprintf("%s.capabilities.add[%d]", p, i), string(cp))
		}
		for i, cp := range caps.Drop {
			c.capability(fmt.Sprintf("%s.capabilities.drop[%d]", p, i), string(cp))
		}
	}
	c.seccomp(p+".seccompProfile", sc.SeccompProfile)
	if sc.ProcMount != nil && *sc.ProcMount != v1.DefaultProcMount {
		c.unsupported(p+".procMount", "only the default /proc mount")
	}
	c.appArmor(p+".appArmorProfile", sc.AppArmorProfile)
}

func (c *checker) capability(p, name string) {
	n := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(name), "CAP_"))
	if n == "ALL" {
		return
	}
	for _, r := range n {
		if !(r >= 'A' && r <= 'Z' || r == '_') {
			c.fail(p, "%q is not a capability name", name)
			return
		}
	}
}

// clusterVolumes are volume types that need a cluster to provide them.
var clusterVolumes = map[string]func(*v1.VolumeSource) bool{
	"persistentVolumeClaim": func(v *v1.VolumeSource) bool { return v.PersistentVolumeClaim != nil },
	"csi":                   func(v *v1.VolumeSource) bool { return v.CSI != nil },
	"ephemeral":             func(v *v1.VolumeSource) bool { return v.Ephemeral != nil },
	"nfs":                   func(v *v1.VolumeSource) bool { return v.NFS != nil },
	"iscsi":                 func(v *v1.VolumeSource) bool { return v.ISCSI != nil },
	"rbd":                   func(v *v1.VolumeSource) bool { return v.RBD != nil },
	"cephfs":                func(v *v1.VolumeSource) bool { return v.CephFS != nil },
	"glusterfs":             func(v *v1.VolumeSource) bool { return v.Glusterfs != nil },
	"fc":                    func(v *v1.VolumeSource) bool { return v.FC != nil },
	"flexVolume":            func(v *v1.VolumeSource) bool { return v.FlexVolume != nil },
	"gitRepo":               func(v *v1.VolumeSource) bool { return v.GitRepo != nil },
	"awsElasticBlockStore":  func(v *v1.VolumeSource) bool { return v.AWSElasticBlockStore != nil },
	"gcePersistentDisk":     func(v *v1.VolumeSource) bool { return v.GCEPersistentDisk != nil },
	"azureDisk":             func(v *v1.VolumeSource) bool { return v.AzureDisk != nil },
	"azureFile":             func(v *v1.VolumeSource) bool { return v.AzureFile != nil },
	"cinder":                func(v *v1.VolumeSource) bool { return v.Cinder != nil },
	"vsphereVolume":         func(v *v1.VolumeSource) bool { return v.VsphereVolume != nil },
	"quobyte":               func(v *v1.VolumeSource) bool { return v.Quobyte != nil },
	"flocker":               func(v *v1.VolumeSource) bool { return v.Flocker != nil },
	"photonPersistentDisk":  func(v *v1.VolumeSource) bool { return v.PhotonPersistentDisk != nil },
	"portworxVolume":        func(v *v1.VolumeSource) bool { return v.PortworxVolume != nil },
	"scaleIO":               func(v *v1.VolumeSource) bool { return v.ScaleIO != nil },
	"storageos":             func(v *v1.VolumeSource) bool { return v.StorageOS != nil },
}

// volumes checks spec.volumes and returns the set of names mounts may use.
func (c *checker) volumes(vols []v1.Volume) map[string]bool {
	names := map[string]bool{}
	for i := range vols {
		v := &vols[i]
		p := fmt.Sprintf("spec.volumes[%d]", i)
		c.uniqueLabel(p+".name", v.Name, names, "is defined twice")
		c.volumeSource(p, &v.VolumeSource)
	}
	return names
}

func (c *checker) volumeSource(p string, vs *v1.VolumeSource) {
	for _, kind := range sortedKeys(clusterVolumes) {
		if clusterVolumes[kind](vs) {
			c.unsupported(p+"."+kind, "this volume type needs a cluster or a storage plugin; use hostPath, emptyDir, configMap, secret, downwardAPI, projected or image")
			return
		}
	}
	n := 0
	if h := vs.HostPath; h != nil {
		n++
		c.hostPath(p+".hostPath", h)
	}
	if e := vs.EmptyDir; e != nil {
		n++
		if e.Medium != v1.StorageMediumDefault && e.Medium != v1.StorageMediumMemory && !isHugePagesMedium(e.Medium) {
			c.unsupported(p+".emptyDir.medium", fmt.Sprintf("medium %q; use \"\", Memory, HugePages or HugePages-<size>", e.Medium))
		}
		if e.SizeLimit != nil && e.SizeLimit.Sign() <= 0 {
			c.fail(p+".emptyDir.sizeLimit", "must be more than 0")
		}
	}
	if img := vs.Image; img != nil {
		n++
		c.imageRef(p+".image.reference", img.Reference)
		c.pullPolicy(p+".image.pullPolicy", img.PullPolicy)
	}
	if cm := vs.ConfigMap; cm != nil {
		n++
		c.refName(p+".configMap.name", cm.Name)
		c.keyPaths(p+".configMap", cm.Items, cm.DefaultMode)
	}
	if s := vs.Secret; s != nil {
		n++
		c.refName(p+".secret.secretName", s.SecretName)
		c.keyPaths(p+".secret", s.Items, s.DefaultMode)
	}
	if d := vs.DownwardAPI; d != nil {
		n++
		c.downward(p+".downwardAPI", d.Items, d.DefaultMode)
	}
	if pr := vs.Projected; pr != nil {
		n++
		c.projected(p+".projected", pr)
	}
	if n != 1 {
		c.fail(p, "must have exactly one of hostPath, emptyDir, configMap, secret, downwardAPI, projected")
	}
}

func (c *checker) hostPath(p string, h *v1.HostPathVolumeSource) {
	if !path.IsAbs(h.Path) {
		c.fail(p+".path", "%q must be an absolute path", h.Path)
	}
	for _, part := range strings.Split(h.Path, "/") {
		if part == ".." {
			c.fail(p+".path", "%q must not contain '..'", h.Path)
			break
		}
	}
	if h.Type == nil {
		return
	}
	switch *h.Type {
	case v1.HostPathUnset, v1.HostPathDirectoryOrCreate, v1.HostPathDirectory, v1.HostPathFileOrCreate,
		v1.HostPathFile, v1.HostPathSocket, v1.HostPathCharDev, v1.HostPathBlockDev:
	default:
		c.fail(p+".type", "%q is not one of \"\", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice", *h.Type)
	}
}

func (c *checker) mode(p string, m *int32) {
	if m != nil && (*m < 0 || *m > 0o777) {
		c.fail(p, "%d is not a file mode between 0 and 0777 (511)", *m)
	}
}

func (c *checker) keyPaths(p string, items []v1.KeyToPath, defaultMode *int32) {
	c.mode(p+".defaultMode", defaultMode)
	for i, it := range items {
		ip := fmt.Sprintf("%s.items[%d]", p, i)
		if it.Key == "" {
			c.fail(ip+".key", "required")
		} else {
			c.messages(ip+".key", validation.IsConfigMapKey(it.Key))
		}
		if !relativePath(it.Path) {
			c.fail(ip+".path", "%q must be a relative path without '..'", it.Path)
		}
		c.mode(ip+".mode", it.Mode)
	}
}

func (c *checker) downward(p string, items []v1.DownwardAPIVolumeFile, defaultMode *int32) {
	c.mode(p+".defaultMode", defaultMode)
	for i, it := range items {
		ip := fmt.Sprintf("%s.items[%d]", p, i)
		if !relativePath(it.Path) {
			c.fail(ip+".path", "%q must be a relative path without '..'", it.Path)
		}
		switch {
		case it.FieldRef != nil && it.ResourceFieldRef == nil:
			c.fieldRef(ip+".fieldRef", it.FieldRef, false)
		case it.ResourceFieldRef != nil && it.FieldRef == nil:
			c.resourceFieldRef(ip+".resourceFieldRef", it.ResourceFieldRef, true)
		default:
			c.fail(ip, "must have exactly one of fieldRef, resourceFieldRef")
		}
		c.mode(ip+".mode", it.Mode)
	}
}

func (c *checker) projected(p string, pr *v1.ProjectedVolumeSource) {
	c.mode(p+".defaultMode", pr.DefaultMode)
	for i, src := range pr.Sources {
		sp := fmt.Sprintf("%s.sources[%d]", p, i)
		n := 0
		if cm := src.ConfigMap; cm != nil {
			n++
			c.refName(sp+".configMap.name", cm.Name)
			c.keyPaths(sp+".configMap", cm.Items, nil)
		}
		if s := src.Secret; s != nil {
			n++
			c.refName(sp+".secret.name", s.Name)
			c.keyPaths(sp+".secret", s.Items, nil)
		}
		if d := src.DownwardAPI; d != nil {
			n++
			c.downward(sp+".downwardAPI", d.Items, nil)
		}
		if src.ServiceAccountToken != nil {
			n++
			c.unsupported(sp+".serviceAccountToken", "tokens are issued by an apiserver")
		}
		if src.ClusterTrustBundle != nil {
			n++
			c.unsupported(sp+".clusterTrustBundle", "trust bundles are served by an apiserver")
		}
		if src.PodCertificate != nil {
			n++
			c.unsupported(sp+".podCertificate", "pod certificates are issued by an apiserver")
		}
		if n != 1 {
			c.fail(sp, "must have exactly one of configMap, secret, downwardAPI")
		}
	}
}

// ValidateConfigMap checks a ConfigMap's name, keys and size.
func ValidateConfigMap(origin string, cm *v1.ConfigMap) ErrorList {
	c := &checker{origin: origin, object: describe("ConfigMap", cm.Name)}
	c.meta(&cm.ObjectMeta, false)
	seen := map[string]bool{}
	size := 0
	for _, k := range sortedKeys(cm.Data) {
		c.messages("data["+k+"]", validation.IsConfigMapKey(k))
		seen[k] = true
		size += len(cm.Data[k])
	}
	for _, k := range sortedKeys(cm.BinaryData) {
		c.messages("binaryData["+k+"]", validation.IsConfigMapKey(k))
		if seen[k] {
			c.fail("binaryData["+k+"]", "key is also in data")
		}
		size += len(cm.BinaryData[k])
	}
	c.size("data", size)
	return c.errs
}

// MaxDataBytes bounds the values of one ConfigMap or Secret, as the
// apiserver does (1 MiB): they are copied into every pod that mounts them.
const MaxDataBytes = 1 << 20

func (c *checker) size(p string, n int) {
	if n > MaxDataBytes {
		c.fail(p, "%d bytes of values, more than the limit of %d", n, MaxDataBytes)
	}
}

// ValidateSecret checks a Secret's name, type and keys. No message ever
// includes a value.
func ValidateSecret(origin string, s *v1.Secret) ErrorList {
	c := &checker{origin: origin, object: describe("Secret", s.Name)}
	c.meta(&s.ObjectMeta, false)
	size := 0
	for _, k := range sortedKeys(s.Data) {
		c.messages("data["+k+"]", validation.IsConfigMapKey(k))
		size += len(s.Data[k])
	}
	for _, k := range sortedKeys(s.StringData) {
		c.messages("stringData["+k+"]", validation.IsConfigMapKey(k))
		size += len(s.StringData[k])
	}
	c.size("data", size)
	if s.Type == v1.SecretTypeDockerConfigJson {
		if _, ok := s.Data[v1.DockerConfigJsonKey]; !ok {
			if _, ok := s.StringData[v1.DockerConfigJsonKey]; !ok {
				c.fail("data["+v1.DockerConfigJsonKey+"]", "required for type %s", v1.SecretTypeDockerConfigJson)
			}
		}
	}
	return c.errs
}

func dns1123Subdomain(name string) []string { return validation.IsDNS1123Subdomain(name) }
