package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/podspec"
)

// PodsCommand is `podsup pods`, like `kubectl get pods`: every pod, or
// those of -n's namespace, and with -w the rows that change.
func PodsCommand() *cli.Command {
	return &cli.Command{
		Name:      "pods",
		Usage:     "list pods, as kubectl get pods does",
		ArgsUsage: "[POD...]",
		Flags: withConn(
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "list only the pods of `NAMESPACE` (default: all)"},
			&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "list the pods of every namespace (the default)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "`FORMAT`: wide, json or yaml"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "after the list, print pods as they change"},
		),
		Action: action("pods", runPods),
	}
}

func runPods(cmd *command) error {
	output := cmd.cli.String("output")
	if !validOutput(output) {
		return usagef("-o %q: want wide, json or yaml", output)
	}
	if cmd.cli.Bool("all-namespaces") {
		cmd.namespace = ""
	}
	f := podFilter{namespace: cmd.namespace, names: cmd.args}
	for _, arg := range cmd.args {
		if _, _, err := podRef(arg, f.namespace); err != nil {
			return err
		}
	}
	list, missing, err := f.fetch(cmd.ctx, cmd.client)
	if err != nil {
		return err
	}
	if !cmd.cli.Bool("watch") {
		if len(list.Items) == 0 && len(missing) == 0 && (output == "" || output == "wide") {
			fmt.Fprintln(cmd.errOut, "No pods found.")
			return nil
		}
		if len(list.Items) > 0 || len(missing) == 0 {
			if err := printPods(cmd.out, list, output, time.Now()); err != nil {
				return err
			}
		}
		return errors.Join(missing...)
	}
	w := &podWatch{out: cmd.out, output: output}
	if err := w.step(list, time.Now()); err != nil {
		return err
	}
	return w.run(cmd.ctx, cmd.errOut, func(ctx context.Context) (*v1.PodList, error) {
		list, _, err := f.fetch(ctx, cmd.client)
		return list, err
	})
}

// podFilter selects pods by namespace and by the names a user gave, each
// matched as findPod matches it.
type podFilter struct {
	namespace string
	names     []string
}

// fetch reads the pods and keeps those the filter selects; missing says
// which names matched none.
func (f podFilter) fetch(ctx context.Context, c *Client) (list *v1.PodList, missing []error, err error) {
	list = &v1.PodList{}
	if err := c.getJSON(ctx, "/pods", nil, false, list); err != nil {
		return nil, nil, err
	}
	missing = f.apply(list)
	return list, missing, nil
}

// apply keeps the pods the filter selects. The names were checked with
// podRef already.
func (f podFilter) apply(list *v1.PodList) (missing []error) {
	if len(f.names) == 0 {
		if f.namespace != "" {
			list.Items = slices.DeleteFunc(list.Items, func(p v1.Pod) bool { return p.Namespace != f.namespace })
		}
		return nil
	}
	var picked []v1.Pod
	for _, arg := range f.names {
		ns, name, _ := podRef(arg, f.namespace)
		p, err := findPod(list.Items, ns, name)
		if err != nil {
			missing = append(missing, err)
			continue
		}
		picked = append(picked, *p)
	}
	list.Items = picked
	return missing
}

func validOutput(output string) bool {
	switch output {
	case "", "wide", "json", "yaml":
		return true
	}
	return false
}

// printPods prints pods as a table, or as a PodList in JSON or YAML.
func printPods(w io.Writer, list *v1.PodList, output string, now time.Time) error {
	switch output {
	case "json":
		return printJSON(w, list)
	case "yaml":
		return printYAML(w, list)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, podHeader(output))
	for i := range list.Items {
		fmt.Fprintln(tw, podLine(&list.Items[i], output, now))
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

func printYAML(w io.Writer, v any) error {
	out, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode yaml: %w", err)
	}
	_, err = w.Write(out)
	return err
}

func podHeader(output string) string {
	header := "NAMESPACE\tNAME\tREADY\tSTATUS\tRESTARTS\tAGE"
	if output == "wide" {
		header += "\tIP\tNODE"
	}
	return header
}

// podLine is a pod's row of the table.
func podLine(p *v1.Pod, output string, now time.Time) string {
	row := PodRow(p, now)
	line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", p.Namespace, p.Name, row.Ready, row.Status, row.Restarts, row.Age)
	if output == "wide" {
		line += fmt.Sprintf("\t%s\t%s", orNone(p.Status.PodIP), orNone(p.Spec.NodeName))
	}
	return line
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// Row is how kubectl summarises a pod in one line.
type Row struct {
	Ready, Status, Restarts, Age string
}

// PodRow computes kubectl's READY, STATUS, RESTARTS and AGE columns.
func PodRow(p *v1.Pod, now time.Time) Row {
	restarts, ready := 0, 0
	var lastRestart time.Time
	noteRestart := func(cs v1.ContainerStatus) {
		restarts += int(cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil && t.FinishedAt.After(lastRestart) {
			lastRestart = t.FinishedAt.Time
		}
	}
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	// Native sidecars count among the containers, as kubectl counts them.
	total, sidecars := len(p.Spec.Containers), map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if podspec.IsSidecar(&c) {
			sidecars[c.Name] = true
			total++
		}
	}
	initializing, sidecarRestarts := false, 0
	for i, cs := range p.Status.InitContainerStatuses {
		noteRestart(cs)
		if sidecars[cs.Name] {
			sidecarRestarts += int(cs.RestartCount)
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case sidecars[cs.Name] && cs.Started != nil && *cs.Started:
			if cs.Ready {
				ready++
			}
			continue
		case cs.State.Terminated != nil:
			reason = "Init:" + cs.State.Terminated.Reason
			if cs.State.Terminated.Reason == "" {
				reason = fmt.Sprintf("Init:ExitCode:%d", cs.State.Terminated.ExitCode)
			}
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}
	if !initializing {
		restarts = sidecarRestarts
		running := false
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := p.Status.ContainerStatuses[i]
			noteRestart(cs)
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				running = true
				ready++
			}
		}
		if reason == "Completed" && running {
			reason = "NotReady"
			for _, c := range p.Status.Conditions {
				if c.Type == v1.PodReady && c.Status == v1.ConditionTrue {
					reason = "Running"
				}
			}
		}
	}
	r := Row{Ready: fmt.Sprintf("%d/%d", ready, total), Status: reason, Restarts: strconv.Itoa(restarts), Age: "<unknown>"}
	if restarts > 0 && !lastRestart.IsZero() {
		r.Restarts = fmt.Sprintf("%d (%s ago)", restarts, duration.HumanDuration(now.Sub(lastRestart)))
	}
	if since := podSince(p); !since.IsZero() {
		r.Age = duration.HumanDuration(now.Sub(since))
	}
	return r
}

// podSince is when a pod was created: static pods have no creation time, so
// it is when podsup first saw this version, or when its sandbox started.
func podSince(p *v1.Pod) time.Time {
	if !p.CreationTimestamp.IsZero() {
		return p.CreationTimestamp.Time
	}
	if t, err := time.Parse(time.RFC3339Nano, p.Annotations[manifest.AnnotationSeen]); err == nil {
		return t
	}
	if p.Status.StartTime != nil {
		return p.Status.StartTime.Time
	}
	return time.Time{}
}
