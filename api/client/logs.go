package client

import (
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	v1 "k8s.io/api/core/v1"
)

// defaultContainerAnnotation names the container kubectl logs picks when
// a pod has several.
const defaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// LogsCommand is `podsup logs POD`, like `kubectl logs`.
func LogsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print the logs of a container, as kubectl logs does",
		ArgsUsage: "POD",
		Flags: withConn(namespaceFlag(),
			&cli.StringFlag{Name: "container", Aliases: []string{"c"}, Usage: "`NAME` of the container (default: the pod's only one)"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing as the log grows, across restarts of the container"},
			&cli.BoolFlag{Name: "previous", Aliases: []string{"p"}, Usage: "print the log of the container's previous instance"},
			&cli.Int64Flag{Name: "tail", Value: -1, Usage: "print only the last `N` lines (-1: all)"},
			&cli.BoolFlag{Name: "timestamps", Usage: "prefix each line with its time"},
			&cli.DurationFlag{Name: "since", Usage: "print only lines newer than `DURATION` (5s, 2m, 3h)"},
			&cli.StringFlag{Name: "since-time", Usage: "print only lines from `TIME` on (RFC 3339)"},
			&cli.Int64Flag{Name: "limit-bytes", Usage: "print at most `N` bytes"},
		),
		Action: action("logs", runLogs),
	}
}

func runLogs(cmd *command) error {
	if len(cmd.args) != 1 {
		return usagef("name one pod: podsup logs POD [-c CONTAINER]")
	}
	query, err := logQuery(cmd.cli)
	if err != nil {
		return err
	}
	pod, err := cmd.lookupPod(cmd.ctx, cmd.args[0])
	if err != nil {
		return err
	}
	container, note, err := pickContainer(pod, cmd.cli.String("container"))
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintln(cmd.errOut, note)
	}
	path := "/containerLogs/" + url.PathEscape(pod.Namespace) + "/" + url.PathEscape(pod.Name) + "/" + url.PathEscape(container)
	resp, err := cmd.client.stream(cmd.ctx, path, query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(cmd.out, resp.Body); err != nil {
		return fmt.Errorf("read logs of %s/%s: %w", pod.Name, container, err)
	}
	return nil
}

// logQuery turns the flags into the query of /containerLogs.
func logQuery(c *cli.Context) (url.Values, error) {
	q := url.Values{}
	setTrue := func(flag, param string) {
		if c.Bool(flag) {
			q.Set(param, "true")
		}
	}
	setTrue("follow", "follow")
	setTrue("previous", "previous")
	setTrue("timestamps", "timestamps")
	if n := c.Int64("tail"); n >= 0 {
		q.Set("tailLines", strconv.FormatInt(n, 10))
	}
	if n := c.Int64("limit-bytes"); n > 0 {
		q.Set("limitBytes", strconv.FormatInt(n, 10))
	} else if n < 0 {
		return nil, usagef("--limit-bytes must be positive")
	}
	since, sinceTime := c.Duration("since"), c.String("since-time")
	switch {
	case since != 0 && sinceTime != "":
		return nil, usagef("--since and --since-time: give one")
	case since < 0:
		return nil, usagef("--since must be positive")
	case since > 0:
		q.Set("sinceSeconds", strconv.FormatInt(int64(math.Ceil(since.Seconds())), 10))
	case sinceTime != "":
		t, err := time.Parse(time.RFC3339, sinceTime)
		if err != nil {
			return nil, usagef("--since-time %q: want an RFC 3339 time such as 2006-01-02T15:04:05Z", sinceTime)
		}
		q.Set("sinceTime", t.Format(time.RFC3339))
	}
	return q, nil
}

// pickContainer is the container a command acts on: the named one, else
// the kubectl.kubernetes.io/default-container, else the only one, else the
// first, as kubectl picks it; note then says so, in kubectl's words, for
// stderr.
func pickContainer(p *v1.Pod, name string) (container, note string, err error) {
	var names, inits []string
	for _, c := range p.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range p.Spec.InitContainers {
		inits = append(inits, c.Name)
	}
	has := func(n string) bool { return slices.Contains(names, n) || slices.Contains(inits, n) }
	if name != "" {
		if !has(name) {
			return "", "", fmt.Errorf("container %s is not valid for pod %s", name, p.Name)
		}
		return name, "", nil
	}
	if d := p.Annotations[defaultContainerAnnotation]; d != "" && has(d) {
		return d, "", nil
	}
	if len(names) == 0 {
		return "", "", fmt.Errorf("pod %s has no containers", p.Name)
	}
	if len(names) == 1 {
		return names[0], "", nil
	}
	all := slices.Clone(names)
	for _, n := range inits {
		all = append(all, n+" (init)")
	}
	return names[0], fmt.Sprintf("Defaulted container %q out of: %s", names[0], strings.Join(all, ", ")), nil
}
