// Package client is podsup's command line for a running podsup: it reads
// the API and prints what it finds the way kubectl would.
package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/podsup/podsup/manifest"
)

// DefaultServer is where the commands find podsup unless --server says
// otherwise: its read-only port.
const DefaultServer = "http://127.0.0.1:10255"

// maxResponse bounds what the client reads from a server.
const maxResponse = 64 << 20

func serverFlag() cli.Flag {
	return &cli.StringFlag{Name: "server", Value: DefaultServer, Usage: "podsup's API `URL`", EnvVars: []string{"PODSUP_SERVER"}}
}

// getJSON fetches path from the server into v.
func getJSON(ctx context.Context, server, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(server, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach podsup at %s: %w", server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s: %s", server, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

// PodsCommand is `podsup pods`, like `kubectl get pods`.
func PodsCommand() *cli.Command {
	return &cli.Command{
		Name:  "pods",
		Usage: "list pods, as kubectl get pods does",
		Flags: []cli.Flag{
			serverFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "wide, json or yaml"},
		},
		Action: func(c *cli.Context) error {
			var list v1.PodList
			if err := getJSON(c.Context, c.String("server"), "/pods", &list); err != nil {
				return cli.Exit("podsup pods: "+err.Error(), 1)
			}
			return printPods(c.App.Writer, &list, c.String("output"), time.Now())
		},
	}
}

func printPods(w io.Writer, list *v1.PodList, output string, now time.Time) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "    ")
		return enc.Encode(list)
	case "yaml":
		out, err := yaml.Marshal(list)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	case "", "wide":
	default:
		return cli.Exit(fmt.Sprintf("podsup pods: -o %q: want wide, json or yaml", output), 2)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	header := "NAMESPACE\tNAME\tREADY\tSTATUS\tRESTARTS\tAGE"
	if output == "wide" {
		header += "\tIP\tNODE"
	}
	fmt.Fprintln(tw, header)
	for i := range list.Items {
		p := &list.Items[i]
		row := PodRow(p, now)
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", p.Namespace, p.Name, row.Ready, row.Status, row.Restarts, row.Age)
		if output == "wide" {
			ip := p.Status.PodIP
			if ip == "" {
				ip = "<none>"
			}
			line += fmt.Sprintf("\t%s\t%s", ip, p.Spec.NodeName)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
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
	initializing := false
	for i, cs := range p.Status.InitContainerStatuses {
		noteRestart(cs)
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
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
		restarts = 0
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
	r := Row{Ready: fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers)), Status: reason, Restarts: strconv.Itoa(restarts), Age: "<unknown>"}
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
