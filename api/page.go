package api

import (
	_ "embed"
	"net/http"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/health"
	"github.com/podsup/podsup/manifest"
)

//go:embed page.html
var pageHTML []byte

// statusPage serves the status page: one self-contained HTML file whose
// script polls /ui/state. It loads nothing from anywhere else, so it works
// on an offline box, and its policy forbids it to.
func statusPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		w.Write(pageHTML)
	})
}

// UIState is what the status page shows, in one response.
type UIState struct {
	Time time.Time    `json:"time"`
	Node *NodeSummary `json:"node,omitempty"`
	Pods []UIPod      `json:"pods"`
}

// UIPod is one pod as the status page shows it.
type UIPod struct {
	Namespace  string               `json:"namespace"`
	Name       string               `json:"name"`
	Phase      v1.PodPhase          `json:"phase"`
	Reason     string               `json:"reason,omitempty"`
	Message    string               `json:"message,omitempty"`
	PodIP      string               `json:"podIP,omitempty"`
	Ready      bool                 `json:"ready"`
	Source     string               `json:"source,omitempty"`
	Containers []UIContainer        `json:"containers"`
	Probes     []health.ProbeStatus `json:"probes"`
	Events     []events.Event       `json:"events"`
}

// UIContainer is one container as the status page shows it.
type UIContainer struct {
	Name     string `json:"name"`
	Image    string `json:"image"`
	Init     bool   `json:"init,omitempty"`
	State    string `json:"state"` // Running, Waiting or Terminated
	Reason   string `json:"reason,omitempty"`
	Ready    bool   `json:"ready"`
	Restarts int32  `json:"restarts"`
}

// uiEvents is how many recent events the page shows per pod.
const uiEvents = 5

func (d Deps) uiState(w http.ResponseWriter, r *http.Request) {
	st := UIState{Time: time.Now(), Pods: []UIPod{}}
	if d.Node != nil {
		n := d.Node.NodeSummary()
		st.Node = &n
	}
	pods := d.Pods.Pods()
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	for _, p := range pods {
		st.Pods = append(st.Pods, d.uiPod(p))
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, st)
}

func (d Deps) uiPod(p *v1.Pod) UIPod {
	key := p.Namespace + "/" + p.Name
	u := UIPod{Namespace: p.Namespace, Name: p.Name, Phase: p.Status.Phase, Reason: p.Status.Reason, Message: p.Status.Message,
		PodIP: p.Status.PodIP, Source: p.Annotations[manifest.AnnotationSource],
		Containers: []UIContainer{}, Probes: []health.ProbeStatus{}, Events: []events.Event{}}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			u.Ready = c.Status == v1.ConditionTrue
		}
	}
	for _, cs := range p.Status.InitContainerStatuses {
		u.Containers = append(u.Containers, uiContainer(cs, true))
	}
	for _, cs := range p.Status.ContainerStatuses {
		u.Containers = append(u.Containers, uiContainer(cs, false))
	}
	if d.Probes != nil {
		if probes := d.Probes.Probes(key); probes != nil {
			u.Probes = probes
		}
	}
	if d.Events != nil {
		evs := d.Events.List(key)
		if len(evs) > uiEvents {
			evs = evs[len(evs)-uiEvents:]
		}
		u.Events = append(u.Events, evs...)
	}
	return u
}

func uiContainer(cs v1.ContainerStatus, init bool) UIContainer {
	c := UIContainer{Name: cs.Name, Image: cs.Image, Init: init, Ready: cs.Ready, Restarts: cs.RestartCount}
	switch s := cs.State; {
	case s.Running != nil:
		c.State = "Running"
	case s.Terminated != nil:
		c.State, c.Reason = "Terminated", s.Terminated.Reason
	case s.Waiting != nil:
		c.State, c.Reason = "Waiting", s.Waiting.Reason
	default:
		c.State = "Waiting"
	}
	return c
}
