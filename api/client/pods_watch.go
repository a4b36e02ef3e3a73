package client

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
)

// watchInterval is how often `podsup pods -w` reads the pods again.
const watchInterval = time.Second

// podWatch prints pods as kubectl get -w does: the table once, then a row
// for each pod that changes, appears or goes. In JSON or YAML, the changed
// pods themselves.
type podWatch struct {
	out      io.Writer
	output   string
	interval time.Duration // 0 means watchInterval

	started bool
	last    map[string]seenPod // by namespace/name
}

// seenPod is a pod as last printed.
type seenPod struct {
	pod v1.Pod
	key string // what a change of shows in a row
}

// rowKey is what a row shows that may change, the ages aside: they change
// every second and are not news. The UID is in it: a pod replaced between
// two reads (its manifest changed) is news even when its row looks the
// same.
func rowKey(p *v1.Pod) string {
	r := PodRow(p, time.Time{})
	restarts, _, _ := strings.Cut(r.Restarts, " ")
	return strings.Join([]string{string(p.UID), r.Ready, r.Status, restarts, p.Status.PodIP, p.Spec.NodeName}, "\t")
}

// step prints what changed since the last step; the first prints all.
func (w *podWatch) step(list *v1.PodList, now time.Time) error {
	var changed []v1.Pod
	current := make(map[string]seenPod, len(list.Items))
	for i := range list.Items {
		p := &list.Items[i]
		k := p.Namespace + "/" + p.Name
		s := seenPod{pod: *p, key: rowKey(p)}
		current[k] = s
		if old, ok := w.last[k]; !ok || old.key != s.key {
			changed = append(changed, *p)
		}
	}
	var gone []v1.Pod
	for k, s := range w.last {
		if _, ok := current[k]; !ok {
			gone = append(gone, s.pod)
		}
	}
	w.last = current
	first := !w.started
	w.started = true
	return w.print(changed, gone, first, now)
}

func (w *podWatch) print(changed, gone []v1.Pod, header bool, now time.Time) error {
	switch w.output {
	case "json", "yaml":
		for _, p := range append(changed, gone...) {
			p.APIVersion, p.Kind = "v1", "Pod"
			var err error
			if w.output == "json" {
				err = printJSON(w.out, &p)
			} else if _, err = fmt.Fprintln(w.out, "---"); err == nil {
				err = printYAML(w.out, &p)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w.out, 0, 8, 3, ' ', 0)
	if header {
		fmt.Fprintln(tw, podHeader(w.output))
	}
	for i := range changed {
		fmt.Fprintln(tw, podLine(&changed[i], w.output, now))
	}
	for i := range gone {
		row := podLine(&gone[i], w.output, now)
		cols := strings.Split(row, "\t")
		cols[3] = "Deleted"
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// run reads the pods every interval and prints what changed until ctx
// ends. A podsup that does not answer for a while (it restarts) is said
// once on errOut and read again.
func (w *podWatch) run(ctx context.Context, errOut io.Writer, fetch func(context.Context) (*v1.PodList, error)) error {
	interval := w.interval
	if interval == 0 {
		interval = watchInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		list, err := fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if msg := err.Error(); msg != lastErr {
				fmt.Fprintf(errOut, "podsup pods: %s; trying again\n", msg)
				lastErr = msg
			}
			continue
		}
		lastErr = ""
		if err := w.step(list, time.Now()); err != nil {
			return err
		}
	}
}
