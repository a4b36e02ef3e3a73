package client

import (
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/health"
)

// spaces are runs of spaces, which the table's widths decide.
var spaces = regexp.MustCompile(" +")

func TestDescribe(t *testing.T) {
	fx := newFixture(t)
	web := staticPod("default", "web", "main")
	c := &web.Spec.Containers[0]
	c.Command = []string{"httpd", "-f"}
	c.Ports = []v1.ContainerPort{{ContainerPort: 8080, HostPort: 80}}
	c.LivenessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3}
	c.Env = []v1.EnvVar{{Name: "MODE", Value: "fast"},
		{Name: "PASSWORD", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "db"}, Key: "password"}}}}
	web.Status.ContainerStatuses[0].RestartCount = 2
	web.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}}
	fx.pods.Set(web)
	fx.probes["default/web-node1"] = []health.ProbeStatus{{Container: "main", Probe: "Liveness", Result: "failure", State: "success",
		Output: "HTTP probe failed\nwith statuscode: 500", Time: time.Now().Add(-eventsAge)}}
	fx.events.Eventf(events.Warning, "Unhealthy", "default/web-node1", "main", "Liveness probe failed: HTTP probe failed with statuscode: 500")
	fx.events.Eventf(events.Normal, "Started", "default/other-node1", "main", "Started container main")

	r := fx.run("describe", "web")
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{
		"Name:         web-node1",
		"Manifest:     /etc/podsup/manifests/web.yaml",
		"Status:       Running",
		"Host Port:      80/TCP",
		"Liveness:       http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3",
		"Restart Count:  2",
		"    Environment:\n      MODE:      fast\n",
		"<set to the key 'password' in secret 'db'>",
		"Ready   True",
		"main        Liveness  failure  success  10h ago   HTTP probe failed with statuscode: 500",
		"Warning  Unhealthy  10h   podsup, container main  Liveness probe failed",
	} {
		if !strings.Contains(spaces.ReplaceAllString(r.stdout, " "), spaces.ReplaceAllString(want, " ")) {
			t.Errorf("describe does not show %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Started container") {
		t.Errorf("describe shows another pod's events:\n%s", r.stdout)
	}

	if r := fx.run("describe", "pod", "default/web"); r.err != nil || !strings.Contains(r.stdout, "web-node1") {
		t.Errorf("kubectl's `describe pod NAME` form: %v", r.err)
	}
	if r := fx.run("describe", "nope"); r.code() != 1 || !strings.Contains(r.err.Error(), "pod default/nope not found") {
		t.Errorf("describe of a missing pod: %v", r.err)
	}
}

func TestDescribeProbe(t *testing.T) {
	tests := []struct {
		probe v1.Probe
		want  string
	}{
		{probe: v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/ok"}}}, PeriodSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1},
			want: "exec [cat /tmp/ok] delay=0s timeout=0s period=1s #success=1 #failure=3"},
		{probe: v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromString("web")}}, InitialDelaySeconds: 5},
			want: "tcp-socket :web delay=5s timeout=0s period=0s #success=0 #failure=0"},
		{probe: v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Scheme: v1.URISchemeHTTPS, Host: "a", Port: intstr.FromInt32(443), Path: "/"}}},
			want: "http-get https://a:443/ delay=0s timeout=0s period=0s #success=0 #failure=0"},
	}
	for _, tc := range tests {
		if got := describeProbe(&tc.probe); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
