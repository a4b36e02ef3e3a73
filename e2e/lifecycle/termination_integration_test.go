//go:build integration

package lifecycle

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
)

// TestFallbackToLogsOnError: with terminationMessagePolicy
// FallbackToLogsOnError a container that fails with an empty termination
// message file ends with the last 80 lines of its log as its message, at
// most 2048 bytes of them (stderr too), as the kubelet makes it; one that
// succeeds, one that wrote its file, and one with the default policy do not.
func TestFallbackToLogsOnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pod := func(name, policy, script string) string {
		return harness.ScriptPod(name, "  restartPolicy: Never\n", "    terminationMessagePolicy: "+policy+"\n", script)
	}
	lines := "i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done; "
	long := "i=0; while [ $i -lt 80 ]; do printf '%099d\\n' $i; i=$((i+1)); done; "
	// One stream each: podsup copies stdout and stderr as they come, so
	// their order in the log is not the order they were written in.
	e.Write("failed.yaml", pod("failed", "FallbackToLogsOnError", lines+"echo last words; exit 3"))
	e.Write("stderr.yaml", pod("stderr", "FallbackToLogsOnError", "echo panic: boom >&2; exit 2"))
	e.Write("long.yaml", pod("long", "FallbackToLogsOnError", long+"exit 1"))
	e.Write("succeeded.yaml", pod("succeeded", "FallbackToLogsOnError", lines+"exit 0"))
	e.Write("wrote.yaml", pod("wrote", "FallbackToLogsOnError", lines+"echo from the file > /dev/termination-log; exit 1"))
	e.Write("file.yaml", pod("file", "File", lines+"exit 1"))
	e.Start()

	message := func(name string) string {
		p := e.WaitPod(name, "terminated", func(p v1.Pod) bool { return harness.ContainerStatus(p, "c").State.Terminated != nil })
		return harness.ContainerStatus(p, "c").State.Terminated.Message
	}
	var want strings.Builder
	for i := 21; i < 100; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	want.WriteString("last words\n")
	if got := message("failed"); got != want.String() {
		t.Errorf("failed container's message:\n%q\nwant its last 80 log lines:\n%q", got, want.String())
	}
	if got := message("long"); len(got) != 2048 || !strings.HasSuffix(got, fmt.Sprintf("%099d\n", 79)) {
		t.Errorf("long lines: a message of %d bytes ending %q; want the last 2048 bytes of the log", len(got), got[max(len(got)-20, 0):])
	}
	for name, want := range map[string]string{"stderr": "panic: boom\n", "succeeded": "", "wrote": "from the file", "file": ""} {
		if got := message(name); got != want {
			t.Errorf("%s: message %q, want %q", name, got, want)
		}
	}
}
