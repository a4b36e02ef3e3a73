package daemon

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func TestMirrorFlags(t *testing.T) {
	base := []string{"--manifests", "/m", "--node-name", "n1"}
	cfg, err := parseRun(t, append(base, "--kubeconfig", "/k", "--node-labels", "role=edge,example.com/rack=r1",
		"--node-labels", "node.kubernetes.io/pool=a", "--register-with-taints", "edge=true:NoSchedule,dedicated:NoExecute",
		"--register-node=false", "--node-status-update-frequency", "20s")...)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Mirror
	if m.Kubeconfig != "/k" || m.RegisterNode || m.StatusUpdateFrequency != 20*time.Second {
		t.Errorf("config %+v", m)
	}
	if len(m.NodeLabels) != 3 || m.NodeLabels["example.com/rack"] != "r1" || m.NodeLabels["node.kubernetes.io/pool"] != "a" {
		t.Errorf("labels %v", m.NodeLabels)
	}
	want := []v1.Taint{{Key: "edge", Value: "true", Effect: v1.TaintEffectNoSchedule}, {Key: "dedicated", Effect: v1.TaintEffectNoExecute}}
	if len(m.Taints) != 2 || m.Taints[0] != want[0] || m.Taints[1] != want[1] {
		t.Errorf("taints %v, want %v", m.Taints, want)
	}

	cfg, err = parseRun(t, base...)
	if err != nil || cfg.Mirror.Kubeconfig != "" || !cfg.Mirror.RegisterNode || cfg.Mirror.StatusUpdateFrequency != 10*time.Second {
		t.Errorf("defaults %+v, %v", cfg.Mirror, err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-labels", "a=b"}, "--node-labels given without --kubeconfig"},
		{[]string{"--kubeconfig", "/k", "--node-labels", "node-role.kubernetes.io/control-plane="}, "node-role.kubernetes.io/control-plane"},
		{[]string{"--kubeconfig", "/k", "--node-labels", "novalue"}, "want KEY=VALUE"},
		{[]string{"--kubeconfig", "/k", "--register-with-taints", "a=b:Sometimes"}, `effect "Sometimes"`},
		{[]string{"--kubeconfig", "/k", "--register-with-taints", "a=b"}, "want KEY[=VALUE]:EFFECT"},
		{[]string{"--kubeconfig", "/k", "--node-status-update-frequency", "10ms"}, "at least 1s"},
	} {
		_, err := parseRun(t, append(base, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one with %q", tt.args, err, tt.want)
		}
	}
}

// TestKubeletPort: the Node reports the port of --address, so that the
// apiserver reaches podsup on any port, and 0 without an authenticated API.
func TestKubeletPort(t *testing.T) {
	base := []string{"--manifests", "/m", "--node-name", "n1", "--kubeconfig", "/k"}
	for _, tt := range []struct {
		name    string
		address []string
		want    int32
	}{
		{"default", nil, 10250},
		{"another port", []string{"--address", "127.0.0.1:42123"}, 42123},
		{"IPv6", []string{"--address", "[::1]:10260"}, 10260},
		{"disabled", []string{"--address", ""}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseRun(t, append(base, tt.address...)...)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.API.kubeletPort(); got != tt.want {
				t.Errorf("kubelet port %d, want %d", got, tt.want)
			}
		})
	}
}
