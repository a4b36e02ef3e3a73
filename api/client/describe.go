package client

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/podsup/podsup/api"
	"github.com/podsup/podsup/manifest"
)

// DescribeCommand is `podsup describe POD`, like `kubectl describe pod`.
func DescribeCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe",
		Usage:     "show a pod in detail: its spec, status, probe results and recent events",
		ArgsUsage: "POD",
		Flags:     withConn(namespaceFlag()),
		Action:    action("describe", runDescribe),
	}
}

func runDescribe(cmd *command) error {
	args := cmd.args
	if len(args) == 2 && (args[0] == "pod" || args[0] == "pods" || args[0] == "po") {
		args = args[1:] // kubectl's `describe pod NAME`
	}
	if len(args) != 1 {
		return usagef("name one pod: podsup describe POD")
	}
	pod, err := cmd.lookupPod(cmd.ctx, args[0])
	if err != nil {
		return err
	}
	var st api.PodStatus
	path := "/pods/" + url.PathEscape(pod.Namespace) + "/" + url.PathEscape(pod.Name) + "/status"
	if err := cmd.client.getJSON(cmd.ctx, path, nil, false, &st); err != nil {
		return err
	}
	pod.Status = st.Status // the newer of the two
	return describePod(cmd.out, pod, &st, time.Now())
}

// describer writes kubectl describe's indented "Key:  value" lines.
type describer struct {
	tw *tabwriter.Writer
}

func (d describer) line(level int, format string, args ...any) {
	fmt.Fprintf(d.tw, strings.Repeat("  ", level)+format+"\n", args...)
}

// block writes a key, then one value a line below it, or <none>.
func (d describer) block(level int, key string, values []string) {
	if len(values) == 0 {
		d.line(level, "%s:\t<none>", key)
		return
	}
	d.line(level, "%s:", key)
	for _, v := range values {
		d.line(level+1, "%s", v)
	}
}

// list writes a key followed by one value a line, or <none>.
func (d describer) list(level int, key string, values []string) {
	if len(values) == 0 {
		d.line(level, "%s:\t<none>", key)
		return
	}
	d.line(level, "%s:\t%s", key, values[0])
	for _, v := range values[1:] {
		d.line(level, "\t%s", v)
	}
}

func describePod(w io.Writer, p *v1.Pod, st *api.PodStatus, now time.Time) error {
	d := describer{tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	d.line(0, "Name:\t%s", p.Name)
	d.line(0, "Namespace:\t%s", p.Namespace)
	d.line(0, "Node:\t%s", orNone(p.Spec.NodeName))
	if p.Status.StartTime != nil {
		d.time(0, "Start Time", *p.Status.StartTime)
	}
	d.list(0, "Labels", keyValues(p.Labels, "="))
	d.list(0, "Annotations", keyValues(p.Annotations, ": "))
	d.line(0, "Manifest:\t%s", orNone(p.Annotations[manifest.AnnotationManifest]))
	d.line(0, "UID:\t%s", p.UID)
	d.line(0, "Status:\t%s", p.Status.Phase)
	if p.Status.Reason != "" {
		d.line(0, "Reason:\t%s", p.Status.Reason)
	}
	if p.Status.Message != "" {
		d.line(0, "Message:\t%s", p.Status.Message)
	}
	d.line(0, "IP:\t%s", p.Status.PodIP)
	if p.Spec.HostNetwork {
		d.line(0, "Host Network:\ttrue")
	}
	if len(p.Spec.InitContainers) > 0 {
		d.line(0, "Init Containers:")
		d.containers(p.Spec.InitContainers, p.Status.InitContainerStatuses)
	}
	d.line(0, "Containers:")
	d.containers(p.Spec.Containers, p.Status.ContainerStatuses)
	d.conditions(p.Status.Conditions)
	d.volumes(p.Spec.Volumes)
	d.line(0, "QoS Class:\t%s", orNone(string(p.Status.QOSClass)))
	d.probes(st, now)
	d.events(st, now)
	return d.tw.Flush()
}

func keyValues(m map[string]string, sep string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+sep+v)
	}
	sort.Strings(out)
	return out
}

func (d describer) containers(specs []v1.Container, statuses []v1.ContainerStatus) {
	for _, c := range specs {
		var cs v1.ContainerStatus
		for _, s := range statuses {
			if s.Name == c.Name {
				cs = s
			}
		}
		d.line(1, "%s:", c.Name)
		d.line(2, "Container ID:\t%s", cs.ContainerID)
		d.line(2, "Image:\t%s", c.Image)
		d.line(2, "Image ID:\t%s", cs.ImageID)
		for _, port := range c.Ports {
			d.line(2, "Port:\t%d/%s", port.ContainerPort, orDefault(string(port.Protocol), "TCP"))
			if port.HostPort != 0 {
				d.line(2, "Host Port:\t%d/%s", port.HostPort, orDefault(string(port.Protocol), "TCP"))
			}
		}
		if len(c.Command) > 0 {
			d.block(2, "Command", c.Command)
		}
		if len(c.Args) > 0 {
			d.block(2, "Args", c.Args)
		}
		d.state(2, "State", cs.State)
		if cs.LastTerminationState.Terminated != nil {
			d.state(2, "Last State", cs.LastTerminationState)
		}
		d.line(2, "Ready:\t%s", titleBool(cs.Ready))
		d.line(2, "Restart Count:\t%d", cs.RestartCount)
		d.resources(c.Resources)
		for _, pr := range []struct {
			name  string
			probe *v1.Probe
		}{{"Liveness", c.LivenessProbe}, {"Readiness", c.ReadinessProbe}, {"Startup", c.StartupProbe}} {
			if pr.probe != nil {
				d.line(2, "%s:\t%s", pr.name, describeProbe(pr.probe))
			}
		}
		d.block(2, "Environment", envLines(c.Env))
		var mounts []string
		for _, m := range c.VolumeMounts {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			mounts = append(mounts, fmt.Sprintf("%s from %s (%s)", m.MountPath, m.Name, mode))
		}
		d.block(2, "Mounts", mounts)
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func titleBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// time writes a time as kubectl does, unless it is unknown.
func (d describer) time(level int, key string, t metav1.Time) {
	if !t.IsZero() {
		d.line(level, "%s:\t%s", key, t.Format(time.RFC1123Z))
	}
}

func (d describer) state(level int, key string, s v1.ContainerState) {
	switch {
	case s.Running != nil:
		d.line(level, "%s:\tRunning", key)
		d.time(level+1, "Started", s.Running.StartedAt)
	case s.Waiting != nil:
		d.line(level, "%s:\tWaiting", key)
		if s.Waiting.Reason != "" {
			d.line(level+1, "Reason:\t%s", s.Waiting.Reason)
		}
		if s.Waiting.Message != "" {
			d.line(level+1, "Message:\t%s", oneLine(s.Waiting.Message))
		}
	case s.Terminated != nil:
		t := s.Terminated
		d.line(level, "%s:\tTerminated", key)
		d.line(level+1, "Reason:\t%s", t.Reason)
		if t.Message != "" {
			d.line(level+1, "Message:\t%s", oneLine(t.Message))
		}
		d.line(level+1, "Exit Code:\t%d", t.ExitCode)
		if t.Signal != 0 {
			d.line(level+1, "Signal:\t%d", t.Signal)
		}
		d.time(level+1, "Started", t.StartedAt)
		d.time(level+1, "Finished", t.FinishedAt)
	default:
		d.line(level, "%s:\tWaiting", key)
	}
}

func (d describer) resources(r v1.ResourceRequirements) {
	for _, rl := range []struct {
		key  string
		list v1.ResourceList
	}{{"Limits", r.Limits}, {"Requests", r.Requests}} {
		if len(rl.list) == 0 {
			continue
		}
		d.line(2, "%s:", rl.key)
		var names []string
		for n := range rl.list {
			names = append(names, string(n))
		}
		sort.Strings(names)
		for _, n := range names {
			q := rl.list[v1.ResourceName(n)]
			d.line(3, "%s:\t%s", n, q.String())
		}
	}
}

// envLines shows each variable; a value taken from a Secret is named, never
// shown.
func envLines(env []v1.EnvVar) []string {
	var out []string
	for _, e := range env {
		value := e.Value
		if src := e.ValueFrom; src != nil {
			switch {
			case src.SecretKeyRef != nil:
				value = fmt.Sprintf("<set to the key '%s' in secret '%s'>", src.SecretKeyRef.Key, src.SecretKeyRef.Name)
			case src.ConfigMapKeyRef != nil:
				value = fmt.Sprintf("<set to the key '%s' of config map '%s'>", src.ConfigMapKeyRef.Key, src.ConfigMapKeyRef.Name)
			case src.FieldRef != nil:
				value = fmt.Sprintf("(%s:%s)", src.FieldRef.APIVersion, src.FieldRef.FieldPath)
			case src.ResourceFieldRef != nil:
				value = fmt.Sprintf("%s (%s)", src.ResourceFieldRef.Resource, src.ResourceFieldRef.ContainerName)
			}
		}
		out = append(out, e.Name+":\t"+value)
	}
	return out
}

// describeProbe is kubectl's one-line summary of a probe.
func describeProbe(p *v1.Probe) string {
	var what string
	switch h := p.ProbeHandler; {
	case h.Exec != nil:
		what = fmt.Sprintf("exec %v", h.Exec.Command)
	case h.HTTPGet != nil:
		scheme := strings.ToLower(orDefault(string(h.HTTPGet.Scheme), "http"))
		what = fmt.Sprintf("http-get %s://%s:%s%s", scheme, h.HTTPGet.Host, h.HTTPGet.Port.String(), h.HTTPGet.Path)
	case h.TCPSocket != nil:
		what = fmt.Sprintf("tcp-socket %s:%s", h.TCPSocket.Host, h.TCPSocket.Port.String())
	case h.GRPC != nil:
		what = fmt.Sprintf("grpc <pod>:%d %s", h.GRPC.Port, orDefault(ptrString(h.GRPC.Service), "<service>"))
	default:
		what = "unknown"
	}
	return fmt.Sprintf("%s delay=%ds timeout=%ds period=%ds #success=%d #failure=%d",
		what, p.InitialDelaySeconds, p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold)
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (d describer) conditions(conds []v1.PodCondition) {
	if len(conds) == 0 {
		return
	}
	d.line(0, "Conditions:")
	d.line(1, "Type\tStatus")
	for _, c := range conds {
		d.line(1, "%s\t%s", c.Type, c.Status)
	}
}

func (d describer) volumes(vols []v1.Volume) {
	if len(vols) == 0 {
		d.line(0, "Volumes:\t<none>")
		return
	}
	d.line(0, "Volumes:")
	for _, v := range vols {
		d.line(1, "%s:", v.Name)
		s := v.VolumeSource
		switch {
		case s.HostPath != nil:
			d.line(2, "Type:\tHostPath (bare host directory volume)")
			d.line(2, "Path:\t%s", s.HostPath.Path)
		case s.EmptyDir != nil:
			d.line(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)")
			d.line(2, "Medium:\t%s", s.EmptyDir.Medium)
		case s.ConfigMap != nil:
			d.line(2, "Type:\tConfigMap (a volume populated by a ConfigMap)")
			d.line(2, "Name:\t%s", s.ConfigMap.Name)
		case s.Secret != nil:
			d.line(2, "Type:\tSecret (a volume populated by a Secret)")
			d.line(2, "SecretName:\t%s", s.Secret.SecretName)
		case s.Projected != nil:
			d.line(2, "Type:\tProjected (a volume that contains injected data from multiple sources)")
		default:
			d.line(2, "Type:\t<other>")
		}
	}
}

// probes shows the latest run of each probe, with the output of a failed
// one: what the kubelet only shows in events.
func (d describer) probes(st *api.PodStatus, now time.Time) {
	var rows [][]string
	for _, p := range st.Probes {
		rows = append(rows, []string{p.Container, p.Probe, p.Result, p.State, duration.HumanDuration(now.Sub(p.Time)) + " ago", oneLine(p.Output)})
	}
	d.table("Probes", []string{"Container", "Probe", "Result", "State", "Last Run", "Output"}, rows)
}

// events shows the pod's recent events as kubectl describe does.
func (d describer) events(st *api.PodStatus, now time.Time) {
	var rows [][]string
	for _, e := range st.Events {
		from := "podsup"
		if e.Container != "" {
			from += ", container " + e.Container
		}
		rows = append(rows, []string{e.Type, e.Reason, eventAge(e, now), from, oneLine(e.Message)})
	}
	d.table("Events", []string{"Type", "Reason", "Age", "From", "Message"}, rows)
}

// table writes a titled table with its header underlined, or <none>.
func (d describer) table(title string, header []string, rows [][]string) {
	if len(rows) == 0 {
		d.line(0, "%s:\t<none>", title)
		return
	}
	d.line(0, "%s:", title)
	dashes := make([]string, len(header))
	for i, h := range header {
		dashes[i] = strings.Repeat("-", len(h))
	}
	for _, row := range append([][]string{header, dashes}, rows...) {
		d.line(1, "%s", strings.Join(row, "\t"))
	}
}
