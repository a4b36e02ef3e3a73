package runtime

import (
	"testing"

	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/containers"
)

// TestSandboxReadyOnceStartIsWhole: a running pause is ready only with the
// label RunSandbox sets last, with its IPs; a podsup stopped before that
// label leaves a sandbox the pod replaces.
func TestSandboxReadyOnceStartIsWhole(t *testing.T) {
	running := &tasktypes.Process{Status: tasktypes.Status_RUNNING, Pid: 42}
	tests := []struct {
		name   string
		labels map[string]string
		proc   *tasktypes.Process
		ready  bool
	}{
		{"started", map[string]string{LabelStartedAt: "2026-12-03T11:00:00Z", LabelIPs: "10.0.0.7"}, running, true},
		{"started, host network", map[string]string{LabelStartedAt: "2026-12-03T11:00:00Z", LabelHostNetwork: "true"}, running, true},
		{"running, start not recorded", map[string]string{}, running, false},
		{"created only", map[string]string{LabelStartedAt: "2026-12-03T11:00:00Z"}, &tasktypes.Process{Status: tasktypes.Status_CREATED}, false},
		{"no task", map[string]string{LabelStartedAt: "2026-12-03T11:00:00Z"}, nil, false},
	}
	for _, tc := range tests {
		sb := sandboxFrom(containers.Container{ID: "sb", Labels: tc.labels}, tc.proc)
		if sb.Ready != tc.ready {
			t.Errorf("%s: ready %t, want %t", tc.name, sb.Ready, tc.ready)
		}
	}
}
