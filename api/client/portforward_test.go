package client

import (
	"bufio"
	"context"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/api/apitest"
)

// TestPortForward: bytes move both ways through a local port chosen at
// random and through a named one, over the unix socket and over https with
// a token, and Ctrl-C ends the forward with status 0.
func TestPortForward(t *testing.T) {
	for _, tc := range []struct {
		name string
		on   listenOn
	}{{"unix socket", onUnix}, {"https", onHTTPS}} {
		t.Run(tc.name, func(t *testing.T) { testPortForward(t, tc.on) })
	}
}

func testPortForward(t *testing.T, on listenOn) {
	fx := newStreamFixture(t, on)
	web := staticPod("default", "web", "main")
	web.Spec.Containers[0].Ports = []v1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	fx.pods.Set(web)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := apitest.NewOutput()
	done := make(chan result, 1) // buffered: the command never blocks on exit
	go func() {
		done <- runApp(ctx, nil, out, nil, fx.args("port-forward", "web", ":80", "0:http")...)
	}()
	out.WaitFor(t, "-> 8080\n")
	// kubectl's words: Forwarding from 127.0.0.1:PORT -> REMOTE
	local := map[string]string{}
	for _, m := range regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\n`).FindAllStringSubmatch(out.String(), -1) {
		local[m[2]] = m[1]
	}
	if local["80"] == "" || local["8080"] == "" {
		t.Fatalf("output %q, want a local port forwarded to 80 and one to 8080", out.String())
	}
	for remote, port := range map[string]string{"80": local["80"], "8080": local["8080"]} {
		conn, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		if greeting, err := r.ReadString('\n'); err != nil || greeting != "port "+remote+"\n" {
			t.Fatalf("pod's greeting %q, %v; want port %s", greeting, err, remote)
		}
		if _, err := io.WriteString(conn, "ping\n"); err != nil {
			t.Fatal(err)
		}
		if echo, err := r.ReadString('\n'); err != nil || echo != "ping\n" {
			t.Errorf("echo %q, %v; want ping", echo, err)
		}
		conn.Close()
	}
	cancel()
	r := apitest.Await(t, done, "port-forward to end")
	if r.err != nil {
		t.Errorf("a stopped port-forward failed: %v", r.err)
	}
	fx.fake.mu.Lock()
	ports := slices.Clone(fx.fake.ports)
	fx.fake.mu.Unlock()
	slices.Sort(ports)
	if !slices.Equal(ports, []int32{80, 8080}) {
		t.Errorf("the pod's ports reached: %v, want [80 8080]", ports)
	}
	want := "POST SPDY/3.1"
	if on == onHTTPS {
		want += " Bearer " + fixtureToken
	}
	if got := fx.fake.requestLog(); !slices.Equal(got, []string{want}) {
		t.Errorf("stream requests %q, want one %q", got, want)
	}
}

func TestPortForwardErrors(t *testing.T) {
	fx := newStreamFixture(t, onUnix)
	tests := []struct {
		name     string
		args     []string
		wantErr  string
		wantCode int
	}{
		{name: "unknown pod", args: []string{"nope", "80"}, wantErr: "pod default/nope not found", wantCode: 1},
		{name: "not running", args: []string{"done", "80"}, wantErr: "pod is not running. Current status=Succeeded", wantCode: 1},
		{name: "unknown port name", args: []string{"web", "8080:http"}, wantErr: `pod web-node1 does not have a named port "http"`, wantCode: 1},
		{name: "no port", args: []string{"web"}, wantErr: "at least one port", wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fx.exec(defaultStreams, nil, append([]string{"port-forward"}, tc.args...)...)
			if r.code() != tc.wantCode || !strings.Contains(r.err.Error(), tc.wantErr) {
				t.Errorf("exit %d (%v), want %d saying %q", r.code(), r.err, tc.wantCode, tc.wantErr)
			}
		})
	}
}

func TestPodPorts(t *testing.T) {
	p := staticPod("default", "web", "main")
	p.Spec.Containers[0].Ports = []v1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	got, err := podPorts(p, []string{"80", ":80", "9000:80", "http", ":http", "9000:http"})
	want := []string{"80", ":80", "9000:80", "8080:8080", ":8080", "9000:8080"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
}
