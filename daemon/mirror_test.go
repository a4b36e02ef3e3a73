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
