package cni

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func testPod(sandboxID string) PodNetwork {
	return PodNetwork{Namespace: "default", Name: "web", UID: "uid-1", SandboxID: sandboxID}
}

func TestRuntimeConf(t *testing.T) {
	p := testPod("sb1")
	p.PortMappings = []PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"},
		{HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"},
		{HostPort: 0, ContainerPort: 9090, Protocol: "tcp"}, // no hostPort: skipped
		{HostPort: 7000, ContainerPort: 7000},               // protocol defaults to tcp
	}
	rt := runtimeConf(p, "/run/ns/sb1")
	if rt.ContainerID != "sb1" || rt.NetNS != "/run/ns/sb1" || rt.IfName != "eth0" {
		t.Errorf("runtime conf %+v", rt)
	}
	var args []string
	for _, a := range rt.Args {
		args = append(args, a[0]+"="+a[1])
	}
	if got, want := strings.Join(args, ";"), "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1"; got != want {
		t.Errorf("CNI_ARGS %q, want %q", got, want)
	}
	got, err := json.Marshal(rt.CapabilityArgs)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},` +
		`{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"},` +
		`{"hostPort":7000,"containerPort":7000,"protocol":"tcp"}]}`
	if string(got) != want {
		t.Errorf("capability args\n got %s\nwant %s", got, want)
	}

	if rt := runtimeConf(testPod("sb2"), "/x"); rt.CapabilityArgs != nil {
		t.Errorf("pod without hostPorts got capability args %v", rt.CapabilityArgs)
	}
	if lo := loopbackConf(p, "/x"); lo.IfName != "lo" || len(lo.Args) != len(rt.Args) {
		t.Errorf("loopback conf %+v", lo)
	}
}

func TestPodNetworkValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(p *PodNetwork)
		wantErr string
	}{
		{name: "valid", edit: func(p *PodNetwork) {}},
		{name: "no sandbox ID", edit: func(p *PodNetwork) { p.SandboxID = "" }, wantErr: `sandbox ID ""`},
		{name: "sandbox ID with a slash", edit: func(p *PodNetwork) { p.SandboxID = "../etc" }, wantErr: `sandbox ID "../etc"`},
		{name: "sandbox ID too long", edit: func(p *PodNetwork) { p.SandboxID = strings.Repeat("a", 77) }, wantErr: "sandbox ID"},
		{name: "no name", edit: func(p *PodNetwork) { p.Name = "" }, wantErr: `Name "": required`},
		{name: "no UID", edit: func(p *PodNetwork) { p.UID = "" }, wantErr: `UID "": required`},
		{name: "separator in namespace", edit: func(p *PodNetwork) { p.Namespace = "a;b" }, wantErr: `Namespace "a;b": must not contain`},
		{
			name:    "host port out of range",
			edit:    func(p *PodNetwork) { p.PortMappings = []PortMapping{{HostPort: 70000, ContainerPort: 80}} },
			wantErr: "PortMappings[0].HostPort",
		},
		{
			name:    "container port missing",
			edit:    func(p *PodNetwork) { p.PortMappings = []PortMapping{{HostPort: 80}} },
			wantErr: "PortMappings[0].ContainerPort",
		},
		{
			name: "unknown protocol",
			edit: func(p *PodNetwork) {
				p.PortMappings = []PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "icmp"}}
			},
			wantErr: `PortMappings[0].Protocol "icmp"`,
		},
		{
			name: "bad host IP",
			edit: func(p *PodNetwork) {
				p.PortMappings = []PortMapping{{HostPort: 80, ContainerPort: 80, HostIP: "localhost"}}
			},
			wantErr: `PortMappings[0].HostIP "localhost"`,
		},
		{
			name: "mapping without host port is not checked",
			edit: func(p *PodNetwork) { p.PortMappings = []PortMapping{{ContainerPort: 0, Protocol: "icmp"}} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPod("sb1")
			tt.edit(&p)
			err := p.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v; want ErrInvalid saying %q", err, tt.wantErr)
			}
		})
	}
}
