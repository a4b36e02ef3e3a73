package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/podsup/podsup/api"
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
	w := &eventWatch{table: t, errOut: cmd.errOut, query: q, open: cmd.client.watchEvents, pause: pause}
	return w.run(cmd.ctx)
}

// watchEvents starts a watch of events with query, and returns its stream
// and the epoch of the recorder that numbers its events.
func (c *Client) watchEvents(ctx context.Context, query url.Values) (io.ReadCloser, string, error) {
	resp, err := c.stream(ctx, "/events", query)
	if err != nil {
		return nil, "", err
	}
	return resp.Body, resp.Header.Get(api.EventsEpochHeader), nil
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

// eventsRetry is how long a broken watch of events waits before it
// watches again.
const eventsRetry = time.Second

// pause waits eventsRetry, or until ctx ends.
func pause(ctx context.Context) error {
	t := time.NewTimer(eventsRetry)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// eventWatch prints the events of a watch as they come, until ctx ends.
// When the stream breaks (podsup restarts, the connection drops), it
// watches again from the last event it got: none is printed twice, and
// none that podsup still keeps is missed. podsup says when it no longer
// keeps some, and that is printed as a warning.
type eventWatch struct {
	table  *eventTable
	errOut io.Writer
	query  url.Values // watch=true, and the pod
	// open starts a watch with query, and returns its stream and the epoch
	// of the recorder that numbers its events.
	open func(ctx context.Context, query url.Values) (body io.ReadCloser, epoch string, err error)
	// pause waits before a broken watch is tried again; it returns ctx's
	// error when ctx ends first.
	pause func(ctx context.Context) error

	opened bool   // a stream was opened: from then on, failing to reach podsup is tried again
	epoch  string // of the last stream; "" from a podsup too old to resume a watch
	seq    uint64 // of the last event got
	said   string // the last break said on errOut, said once until a stream opens
}

// watchLine is a line of a watch: an event, a Status saying that some are
// no longer kept (its message is then the Event's), or a Bookmark: the Seq
// the watch has got every event of its pod up to.
type watchLine struct {
	Kind string `json:"kind"`
	events.Event
}

func (w *eventWatch) run(ctx context.Context) error {
	for {
		resumable, err := w.once(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case !resumable:
			return err
		case w.epoch == "":
			return err // an older podsup cannot resume a watch: it ends with its stream
		}
		why := "podsup ended the watch"
		if err != nil {
			why = err.Error()
		}
		if why != w.said {
			fmt.Fprintf(w.errOut, "podsup events: %s; watching again\n", why)
			w.said = why
		}
		if w.pause(ctx) != nil {
			return nil
		}
	}
}

// once watches, from the last event got if there was one, until the
// stream ends. resumable says whether the watch may go on with another.
func (w *eventWatch) once(ctx context.Context) (resumable bool, err error) {
	q := maps.Clone(w.query)
	q.Set("allowWatchBookmarks", "true")
	if w.epoch != "" {
		q.Set("since", strconv.FormatUint(w.seq, 10))
		q.Set("epoch", w.epoch)
	}
	body, epoch, err := w.open(ctx, q)
	if err != nil {
		return w.opened && errors.Is(err, ErrUnreachable), err
	}
	defer body.Close()
	if !w.opened {
		if err := w.table.print(nil, time.Now()); err != nil { // the header
			return false, err
		}
	}
	w.opened, w.said = true, ""
	if epoch != w.epoch {
		w.seq = 0 // another recorder (podsup restarted): its numbers start again
	}
	w.epoch = epoch
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	for sc.Scan() {
		var line watchLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return false, fmt.Errorf("read events: %w", err)
		}
		switch line.Kind {
		case "Status":
			fmt.Fprintf(w.errOut, "podsup events: warning: %s\n", line.Message)
			continue
		case "Bookmark":
			w.seq = max(w.seq, line.Seq)
			continue
		}
		e := line.Event
		if e.Seq != 0 && e.Seq <= w.seq {
			continue // printed before the watch broke
		}
		w.seq = e.Seq
		if kept := w.table.filter([]events.Event{e}); len(kept) > 0 {
			if err := w.table.print(kept, time.Now()); err != nil {
				return false, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return !errors.Is(err, bufio.ErrTooLong), fmt.Errorf("read events: %w", err)
	}
	return true, nil
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
