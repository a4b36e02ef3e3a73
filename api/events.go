package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/podsup/podsup/events"
)

// EventsEpochHeader carries the epoch of the recorder whose events an
// answer of /events holds (events.Recorder.Epoch). A watch that breaks
// resumes with ?since=<the last seq it got>&epoch=<this>.
const EventsEpochHeader = "Podsup-Events-Epoch"

// events lists recorded events (?pod=namespace/name), or with ?watch=true
// streams them as JSON lines: those recorded so far, or after ?since=SEQ,
// then the new ones as they happen. When events a watch should send are no
// longer kept, it sends a Status line in their place (code 410, reason
// Expired, as the apiserver says a resourceVersion is too old) and goes on
// with those that are. With ?allowWatchBookmarks=true, as the apiserver
// has it, a line {"kind":"Bookmark","seq":N} follows what a watch lists:
// a watch of one pod resumes from N, though it got no event numbered so.
func (d Deps) events(w http.ResponseWriter, r *http.Request) {
	if d.Events == nil {
		writeError(w, http.StatusNotFound, "events are not recorded")
		return
	}
	q := r.URL.Query()
	pod := q.Get("pod")
	w.Header().Set(EventsEpochHeader, d.Events.Epoch())
	if q.Get("watch") != "true" {
		if q.Has("since") || q.Has("epoch") {
			writeError(w, http.StatusBadRequest, "since and epoch resume a watch: give them with watch=true")
			return
		}
		evs := d.Events.List(pod)
		if evs == nil {
			evs = []events.Event{}
		}
		writeJSON(w, http.StatusOK, evs)
		return
	}
	var since uint64
	if v := q.Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "since: want the seq of the last event a watch got")
			return
		}
	}
	f, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	restarted := q.Get("epoch") != "" && q.Get("epoch") != d.Events.Epoch()
	if restarted {
		since = 0 // of another recorder: this one's events are all new
	}
	evs, watcher, complete := d.Events.Watch(pod, since)
	defer func() { watcher.Stop() }() // the last one: a watcher that fell behind is replaced
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	var lost string
	switch {
	case restarted:
		lost = "podsup restarted: events it recorded after the last one this watch got, before it stopped, if any, are lost"
	case q.Has("since") && !complete:
		lost = d.expired(since)
	}
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	for {
		if lost != "" {
			if enc.Encode(statusBody(http.StatusGone, "Expired", lost)) != nil {
				return
			}
		}
		for _, e := range evs {
			if enc.Encode(e) != nil {
				return
			}
			since = e.Seq
		}
		if bookmarks && enc.Encode(map[string]any{"kind": "Bookmark", "seq": watcher.After()}) != nil {
			return
		}
		f.Flush()
		for open := true; open; {
			select {
			case <-r.Context().Done():
				return
			case e, ok := <-watcher.Events():
				if open = ok; !ok {
					break
				}
				if enc.Encode(e) != nil {
					return
				}
				since = e.Seq
				f.Flush()
			}
		}
		if watcher.Err() == nil {
			return // stopped, which only this handler does
		}
		// The client did not read as fast as events were recorded: watch
		// again from the last event sent, out of the ring.
		evs, watcher, complete = d.Events.Watch(pod, since)
		lost = ""
		if !complete {
			lost = d.expired(since)
		}
	}
}

// expired says that events after since are no longer kept.
func (d Deps) expired(since uint64) string {
	return fmt.Sprintf("events recorded after event %d are no longer kept (podsup keeps the last %d): some of those this watch was to send may be lost",
		since, d.Events.Capacity())
}
