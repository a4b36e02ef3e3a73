//go:build integration

package reliability

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/volume"
)

// chattyCmd logs about 200 KB a second: numbered lines of 200 bytes.
const chattyCmd = `pad=$(printf '%0190d' 0); i=0; trap 'exit 0' TERM; ` +
	`while true; do i=$((i+1)); echo "$i $pad"; [ $((i%50)) = 0 ] && sleep 0.05; done`

// TestReliabilityDiskFull runs podsup with its root and log directories on
// a small filesystem and fills it to the last byte: a file the test writes,
// and a pod that logs a lot. While it is full podsup keeps running and so
// do its pods, a push fails cleanly (an error naming the cause, no partial
// file), the lost log output is reported, and a new pod waits. Once the
// filler is gone the new pod runs, logs resume, the pushed manifests are
// intact, and a restarted podsup adopts every pod.
func TestReliabilityDiskFull(t *testing.T) {
	t.Parallel()
	const size = 32 // MiB
	small := harness.MountTmpfs(t, size)
	root, logs := filepath.Join(small, "root"), filepath.Join(small, "logs")
	// After podsup stops (the harness's cleanup, which runs first), unmount
	// what the pods left under the root, before the filesystem goes.
	t.Cleanup(func() { volume.RemoveAll(root) })
	e := newEnv(t)
	// The harness's own root keeps podsup's log, which must not be on the
	// full filesystem; the later flags win. Eviction is off: this test is
	// about a full disk, not about the pressure that precedes it.
	flags := []string{"--root-dir", root, "--log-dir", logs, "--eviction-hard", "",
		"--container-log-max-size", "1Mi", "--container-log-max-files", "2"}
	e.Write("steady.yaml", harness.SleeperPod("steady", harness.IdleCmd))
	e.Write("chatty.yaml", harness.SleeperPod("chatty", chattyCmd))
	e.Start(flags...)
	sock := e.SocketClient()
	sock.WaitAnswer(t, "/manifests")
	pushed := harness.SleeperPod("pushed", harness.IdleCmd)
	sock.Must(t, "PUT", "/manifests/pushed", pushed, http.StatusOK)
	names := map[string]bool{"steady": true, "chatty": true, "pushed": true}
	e.WaitConverged(names)
	before := e.Tasks()
	pushedFile := filepath.Join(root, "manifests-api", "pushed.yaml")
	if data, err := os.ReadFile(pushedFile); err != nil || string(data) != pushed {
		t.Fatalf("pushed manifest under the root dir: %v %q", err, data)
	}

	// Fill the filesystem.
	filler := filepath.Join(small, "filler")
	written := fill(t, filler)
	fullAt := time.Now()
	harness.Record(t, "filesystem size / filler written", "%d MiB / %.1f MiB", size, float64(written)/(1<<20))

	// While it is full.
	code, body, err := sock.Do("PUT", "/manifests/during", strings.NewReader(harness.SleeperPod("during", harness.IdleCmd)))
	if err != nil || code != http.StatusInternalServerError || !strings.Contains(body, "no space left on device") || !strings.Contains(body, `\"during\"`) {
		t.Errorf("push while full: %d %v %s, want a 500 naming the manifest and the full disk", code, err, body)
	}
	harness.Record(t, "push while full", "HTTP %d", code)
	if entries, _ := os.ReadDir(filepath.Dir(pushedFile)); len(entries) != 1 {
		t.Errorf("the pushed manifests' directory holds %v, want only pushed.yaml", entries)
	}
	e.Write("newpod.yaml", harness.SleeperPod("newpod", harness.IdleCmd))
	if missing := e.waitLogged(map[string]string{"log": "no space left on device"}, harness.Patience, func(string) string {
		return "cannot write container log; dropping output until it can"
	}); len(missing) > 0 {
		t.Error("podsup did not report that container logs cannot be written")
	}
	if ev := e.waitEvent("newpod", "no space left on device"); ev == "" {
		t.Error("no event of the new pod reports the full disk")
	} else {
		reason, _, _ := strings.Cut(ev, ":")
		harness.Record(t, "event of the pod created while full", "%s (no space left on device)", reason)
	}
	time.Sleep(3 * time.Second) // the pods run on a full disk for a while
	e.WaitHealthy("/healthz ok while the disk is full")
	if now := e.Tasks(); changedTasks(before, now) > 0 {
		t.Errorf("running pods were disturbed while the disk was full:\nbefore %v\nnow    %v", before, now)
	}
	if data, err := os.ReadFile(pushedFile); err != nil || string(data) != pushed {
		t.Errorf("pushed manifest changed while the disk was full: %v %q", err, data)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(small, &st); err == nil {
		harness.Record(t, "free while full", "%d KiB", st.Bavail*uint64(st.Bsize)>>10)
	}
	chattyLog := func() int64 {
		var n int64
		files, _ := filepath.Glob(filepath.Join(logs, "*_chatty-node1_*", "main", "*"))
		for _, f := range files {
			if info, err := os.Stat(f); err == nil {
				n += info.Size()
			}
		}
		return n
	}

	// Space returns.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freedAt := time.Now()
	harness.Record(t, "time full", "%s", freedAt.Sub(fullAt).Round(100*time.Millisecond))
	logged := chattyLog()
	if missing := e.waitLogged(map[string]string{"log": "droppedLines="}, harness.Patience, func(string) string {
		return "container log writable again"
	}); len(missing) > 0 {
		t.Error("podsup did not report that container logs resumed")
	}
	harness.Record(t, "container log lines dropped while full, as reported", "%d", e.droppedLogLines())
	names["newpod"] = true
	took := e.WaitConverged(names)
	harness.Record(t, "new pod running after space returned", "%s", took.Round(100*time.Millisecond))
	if grown := chattyLog(); grown == logged {
		t.Errorf("chatty's log did not grow once space returned (%d bytes)", grown)
	}
	sock.Must(t, "PUT", "/manifests/during", harness.SleeperPod("during", harness.IdleCmd), http.StatusOK)
	names["during"] = true
	e.WaitConverged(names)
	if now := e.Tasks(); changedTasks(before, now) > 0 {
		t.Errorf("the pods that ran before the disk filled were disturbed")
	}

	// A restart adopts everything and reads the pushed manifests whole.
	running := e.Tasks()
	e.Stop()
	e.Start(flags...)
	e.WaitConverged(names)
	now := e.Tasks()
	if len(now) != len(running) || changedTasks(running, now) > 0 {
		t.Errorf("the restarted podsup did not adopt every container:\nbefore %v\nafter  %v", running, now)
	}
	for name, want := range map[string]string{"pushed": pushed, "during": harness.SleeperPod("during", harness.IdleCmd)} {
		if data, err := os.ReadFile(filepath.Join(root, "manifests-api", name+".yaml")); err != nil || !bytes.Equal(data, []byte(want)) {
			t.Errorf("pushed manifest %s after the restart: %v %q", name, err, data)
		}
	}
	harness.Record(t, "containers of the first pods changed / adopted after restart", "%d / %d of %d", changedTasks(before, now), len(running)-changedTasks(running, now), len(running))
}

var droppedLines = regexp.MustCompile(`msg="(?:container log writable again|still cannot write container log)".* droppedLines=(\d+)`)

// droppedLogLines adds up the container log lines podsup reported lost.
func (e *env) droppedLogLines() int {
	data, _ := os.ReadFile(e.ProcLog.Name())
	n := 0
	for _, m := range droppedLines.FindAllStringSubmatch(string(data), -1) {
		d, _ := strconv.Atoi(m[1])
		n += d
	}
	return n
}

// waitEvent waits for an event of the named pod whose message contains
// want, and returns it as "Reason: message".
func (e *env) waitEvent(pod, want string) string {
	for deadline := time.Now().Add(harness.Patience); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, ev := range e.PodStatus(pod).Events {
			if strings.Contains(ev.Message, want) {
				return ev.Reason + ": " + ev.Message
			}
		}
	}
	return ""
}

// fill writes zeros to path until the filesystem is full, and returns how
// much it wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := io.Copy(f, zeros{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v after %d bytes, want ENOSPC", path, err, n)
	}
	return n
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
