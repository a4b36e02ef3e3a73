package client

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/podsup/podsup/events"
)

// maxEventLine bounds one event of a watch.
const maxEventLine = 1 << 20

// EventsCommand is `podsup events`, like `kubectl events`.
func EventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "list what happened to pods, as kubectl events does",
		Flags: withConn(
			&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "list only the events of `NAMESPACE` (default: all)"},
			&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "list the events of every namespace (the default)"},
			&cli.StringFlag{Name: "pod", Usage: "list only the events of `POD` (NAME or NAMESPACE/NAME)"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "after the list, print events as they happen"},
		),
		Action: action("events", runEvents),
	}
}

func runEvents(cmd *command) error {
	if len(cmd.args) > 0 {
		return usagef("unexpected argument %q; name a pod with --pod", cmd.args[0])
	}
	if cmd.cli.Bool("all-namespaces") {
		cmd.namespace = ""
	}
	q := url.Values{}
	if arg := cmd.cli.String("pod"); arg != "" {
		key, err := cmd.eventsPodKey(arg)
		if err != nil {
			return err
		}
		q.Set("pod", key)
	}
	t := &eventTable{out: cmd.out, namespace: cmd.namespace, allNamespaces: cmd.namespace == "" && q.Get("pod") == ""}
	if !cmd.cli.Bool("watch") {
		var evs []events.Event
		if err := cmd.client.getJSON(cmd.ctx, "/events", q, true, &evs); err != nil {
			return err
		}
		if len(t.filter(evs)) == 0 {
			fmt.Fprintln(cmd.errOut, "No events found.")
			return nil
		}
		return t.print(t.filter(evs), time.Now())
	}
	q.Set("watch", "true")
	body, err := cmd.client.stream(cmd.ctx, "/events", q)
	if err != nil {
		return err
	}
	defer body.Close()
	return t.watch(body)
}

// eventsPodKey is the namespace/name of the pod --pod names: a pod that is
// there is found as findPod finds it; one that is gone (its events outlive
// it) is taken as written.
func (cmd *command) eventsPodKey(arg string) (string, error) {
	ns, name, err := podRef(arg, cmd.namespace)
	if err != nil {
		return "", err
	}
	pod, err := cmd.lookupPod(cmd.ctx, arg)
	switch {
	case errors.Is(err, errPodNotFound):
		return ns + "/" + name, nil
	case err != nil:
		return "", err
	}
	return pod.Namespace + "/" + pod.Name, nil
}

// eventTable prints events as kubectl events does.
type eventTable struct {
	out           io.Writer
	namespace     string // only this namespace's, unless empty
	allNamespaces bool   // show a NAMESPACE column
	headerDone    bool
}

func (t *eventTable) filter(evs []events.Event) []events.Event {
	if t.namespace == "" {
		return evs
	}
	var kept []events.Event
	for _, e := range evs {
		if ns, _, _ := strings.Cut(e.Pod, "/"); ns == t.namespace {
			kept = append(kept, e)
		}
	}
	return kept
}

func (t *eventTable) print(evs []events.Event, now time.Time) error {
	tw := tabwriter.NewWriter(t.out, 0, 8, 3, ' ', 0)
	if !t.headerDone {
		t.headerDone = true
		header := "LAST SEEN\tTYPE\tREASON\tOBJECT\tCONTAINER\tMESSAGE"
		if t.allNamespaces {
			header = "NAMESPACE\t" + header
		}
		fmt.Fprintln(tw, header)
	}
	for _, e := range evs {
		ns, name, _ := strings.Cut(e.Pod, "/")
		line := fmt.Sprintf("%s\t%s\t%s\tpod/%s\t%s\t%s", eventAge(e, now), e.Type, e.Reason, name, orNone(e.Container), oneLine(e.Message))
		if t.allNamespaces {
			line = ns + "\t" + line
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// watch prints the events of a watch, one JSON object a line, as they
// come, until the stream ends.
func (t *eventTable) watch(body io.Reader) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	if err := t.print(nil, time.Now()); err != nil {
		return err
	}
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		if kept := t.filter([]events.Event{e}); len(kept) > 0 {
			if err := t.print(kept, time.Now()); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	return nil
}

// eventAge is kubectl's LAST SEEN: how long ago, and how often it repeated.
func eventAge(e events.Event, now time.Time) string {
	age := duration.HumanDuration(now.Sub(e.Time))
	if e.Count > 1 {
		age += fmt.Sprintf(" (x%d)", e.Count)
	}
	return age
}

// oneLine keeps a table row on one line: a probe's output may span several.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
