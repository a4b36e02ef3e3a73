//go:build integration

package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// podsupCLI runs the podsup command line against e's admin socket and
// returns what it printed on stdout.
func (e *env) podsupCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), harness.Patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(), append([]string{args[0], "--server", "unix://" + e.Socket}, args[1:]...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("podsup %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// mustCLI is podsupCLI that fails the test on an error.
func (e *env) mustCLI(args ...string) string {
	e.t.Helper()
	out, err := e.podsupCLI(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// cliStream runs a command that streams (logs -f, events -w) and sends its
// lines on a channel, closed when the command ends; stop interrupts it as
// Ctrl-C would and returns how it ended.
func (e *env) cliStream(args ...string) (lines <-chan string, stop func() error) {
	e.t.Helper()
	cmd := exec.Command(harness.Binary(), append([]string{args[0], "--server", "unix://" + e.Socket}, args[1:]...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	ch := make(chan string, 1000) // room for every line of a test: the reader never blocks
	readDone := make(chan struct{})
	go func() { // ends when the command's stdout closes
		defer close(readDone)
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGINT)
		<-readDone
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("podsup %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		return nil
	}
	e.t.Cleanup(func() { stop() })
	return ch, stop
}

// waitLine reads lines until one holds want, and returns those read.
func waitLine(t *testing.T, lines <-chan string, want string) []string {
	t.Helper()
	var seen []string
	deadline := time.After(harness.Patience)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the command ended before printing %q; it printed %q", want, seen)
			}
			seen = append(seen, l)
			if strings.Contains(l, want) {
				return seen
			}
		case <-deadline:
			t.Fatalf("no %q within %s; printed %q", want, harness.Patience, seen)
		}
	}
}

// restarterPod's container counts its instances in an emptyDir: the first
// prints "instance 1" and fails once the test creates the file "end" in
// the directory ctl, the second prints "instance 2" and stays.
func restarterPod(ctl string) string {
	return `apiVersion: v1
kind: Pod
metadata: {name: restarter}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: data, emptyDir: {}}, {name: ctl, hostPath: {path: ` + ctl + `}}]
  containers:
  - name: main
    image: ` + testenv.BusyboxRef + `
    volumeMounts: [{name: data, mountPath: /data}, {name: ctl, mountPath: /ctl}]
    command: [sh, -c, 'n=$(($(cat /data/n 2>/dev/null || echo 0) + 1)); echo $n > /data/n; echo "instance $n"; if [ $n -ge 2 ]; then exec sleep 1000; fi; until [ -e /ctl/end ]; do sleep 0.1; done; echo "instance $n ends"; exit 1']
`
}

// TestCLILogs: `podsup logs -f` follows the container into its next
// instance after a restart, and `--previous` reads the instance before.
func TestCLILogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctl := t.TempDir()
	e.Write("restarter.yaml", restarterPod(ctl))
	e.Start()
	e.WaitConverged(map[string]bool{"restarter": true})

	lines, stop := e.cliStream("logs", "restarter", "-f")
	waitLine(t, lines, "instance 1")
	if err := os.WriteFile(filepath.Join(ctl, "end"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	seen := waitLine(t, lines, "instance 2")
	if seen[0] != "instance 1 ends" {
		t.Errorf("the follow printed %q after instance 1, want its last line then instance 2", seen)
	}
	if err := stop(); err != nil {
		t.Errorf("Ctrl-C on a follow: %v", err)
	}

	if got := e.mustCLI("logs", "restarter", "--previous"); got != "instance 1\ninstance 1 ends\n" {
		t.Errorf("logs --previous printed %q, want the first instance's lines", got)
	}
	if got := e.mustCLI("logs", "default/restarter-node1", "-c", "main"); got != "instance 2\n" {
		t.Errorf("logs printed %q, want the running instance's line", got)
	}
	out := e.mustCLI("logs", "restarter", "--timestamps", "--tail", "1")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\S+ instance 2\n$`).MatchString(out) {
		t.Errorf("logs --timestamps --tail 1 printed %q", out)
	}
	if _, err := e.podsupCLI("logs", "nope"); err == nil || !strings.Contains(err.Error(), "pod default/nope not found") {
		t.Errorf("logs of a missing pod: %v", err)
	}
}

// TestCLIApply: a pod pushed with `podsup apply -f` runs, is listed by
// `podsup pods`, survives a restart of podsup, and `podsup delete` removes
// it and its containers.
func TestCLIApply(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Start()
	file := filepath.Join(t.TempDir(), "Pushed.yaml")
	if err := os.WriteFile(file, []byte(harness.SleeperPod("pushed", "while true; do sleep 1; done")), 0o644); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "podsup answers on its admin socket", func() bool {
		_, err := e.podsupCLI("pods")
		return err == nil
	})
	if got := e.mustCLI("apply", "-f", file); got != "manifest pushed applied: pod default/pushed-node1\n" {
		t.Errorf("apply printed %q", got)
	}
	want := map[string]bool{"pushed": true}
	e.WaitConverged(want)

	out := e.mustCLI("pods", "-o", "wide")
	if !regexp.MustCompile(`(?m)^default\s+pushed-node1\s+2/2\s+Running\s+0\s+\S+\s+\S+\s+node1$`).MatchString(out) {
		t.Errorf("pods -o wide:\n%s", out)
	}

	before := e.Tasks()
	e.Stop()
	e.Start()
	e.WaitConverged(want)
	if after := e.Tasks(); len(after) != len(before) {
		t.Errorf("%d tasks after the restart, %d before", len(after), len(before))
	}
	for id := range before {
		if _, ok := e.Tasks()[id]; !ok {
			t.Errorf("container %s did not survive the restart of podsup", id)
		}
	}

	if got := e.mustCLI("delete", "pushed"); got != "manifest pushed deleted\n" {
		t.Errorf("delete printed %q", got)
	}
	e.WaitConverged(map[string]bool{})
	e.CheckNoLeaks(map[string]bool{})
	if _, err := e.podsupCLI("delete", "pushed"); err == nil || !strings.Contains(err.Error(), `manifest "pushed" not found`) {
		t.Errorf("delete of a deleted manifest: %v", err)
	}
}

// probedPod has a liveness probe that passes and a readiness probe that
// fails until the test creates the file "ready" in the directory ctl.
func probedPod(ctl string) string {
	return `apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: ctl, hostPath: {path: ` + ctl + `}}]
  containers:
  - name: main
    image: ` + testenv.BusyboxRef + `
    command: [sleep, "1000"]
    volumeMounts: [{name: ctl, mountPath: /ctl}]
    livenessProbe:
      exec: {command: ['true']}
      periodSeconds: 1
      timeoutSeconds: 30
    readinessProbe:
      exec: {command: [cat, /ctl/ready]}
      periodSeconds: 1
      timeoutSeconds: 30
`
}

// TestCLIDescribeAndEvents: `podsup describe` shows the probes' results and
// the pod's events, `podsup events` lists and watches events, and the
// read-only port serves `podsup pods` but says where logs are.
func TestCLIDescribeAndEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctl := t.TempDir()
	e.Write("probed.yaml", probedPod(ctl))
	e.Start()
	harness.WaitFor(t, "describe shows the readiness probe failing", func() bool {
		out, _ := e.podsupCLI("describe", "probed")
		return strings.Contains(out, "Readiness probe failed")
	})
	if err := os.WriteFile(filepath.Join(ctl, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.WaitConverged(map[string]bool{"probed": true})

	var out string
	harness.WaitFor(t, "describe shows both probes passing", func() bool {
		out, _ = e.podsupCLI("describe", "probed")
		return regexp.MustCompile(`main\s+Liveness\s+success\s+success`).MatchString(out) &&
			regexp.MustCompile(`main\s+Readiness\s+success\s+success`).MatchString(out)
	})
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^Name:\s+probed-node1$`),
		regexp.MustCompile(`(?m)^Status:\s+Running$`),
		regexp.MustCompile(`Liveness:\s+exec \[true\] delay=0s timeout=30s period=1s #success=1 #failure=3`),
		regexp.MustCompile(`(?m)^\s+Ready\s+True$`),
		regexp.MustCompile(`(?m)^\s+Normal\s+Started\s+\S+\s+podsup, container main\s+Started container main`),
		regexp.MustCompile(`(?m)^\s+Warning\s+Unhealthy\s+.*Readiness probe failed`),
	} {
		if !want.MatchString(out) {
			t.Errorf("describe does not show %s:\n%s", want, out)
		}
	}

	out = e.mustCLI("events")
	if !regexp.MustCompile(`(?m)^default\s+\S+\s+Normal\s+Started\s+pod/probed-node1\s+main\s+Started container main`).MatchString(out) {
		t.Errorf("events:\n%s", out)
	}

	// A watch prints the events so far, then new ones: removing the pod
	// kills its container.
	lines, stop := e.cliStream("events", "-w", "--pod", "probed")
	waitLine(t, lines, "Started")
	e.Remove("probed.yaml")
	waitLine(t, lines, "Killing")
	if err := stop(); err != nil {
		t.Errorf("Ctrl-C on a watch: %v", err)
	}

	// The read-only port serves pods, not logs. The pod was just removed:
	// the list has it, or is empty, by the time it is read.
	ro := exec.Command(harness.Binary(), "pods", "--server", "http://"+e.ReadOnly)
	if out, err := ro.CombinedOutput(); err != nil || !strings.Contains(string(out), "NAMESPACE") && !strings.Contains(string(out), "No pods found.") {
		t.Errorf("pods on the read-only port: %v: %s", err, out)
	}
	ro = exec.Command(harness.Binary(), "events", "--server", "http://"+e.ReadOnly)
	if out, err := ro.CombinedOutput(); err == nil || !strings.Contains(string(out), "read-only port") {
		t.Errorf("events on the read-only port: %v: %s", err, out)
	}
}
