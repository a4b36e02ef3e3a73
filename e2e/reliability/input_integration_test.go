//go:build integration

package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/hostile"
	"github.com/podsup/podsup/manifest"
)

// corpusPatience bounds the wait for podsup to refuse the whole corpus
// from the manifest directory: a race build parsed it in about 3 minutes
// on an idle 2-core machine, and took 19 under a load average of 40; the
// release build this test runs refused it in 33 s with the whole suite
// running (hack/test.sh, run 2 of the README's Tests section).
const corpusPatience = 10 * harness.Patience

// maxHostileHeap bounds the Go heap podsup holds once the hostile corpus
// was refused.
const maxHostileHeap = 200 << 20

// TestReliabilityHostileInput runs three pods, one from each source (a
// file, the manifest URL, a push), then feeds podsup the hostile corpus
// three ways: the whole corpus, and files that are no files (a FIFO, a
// device, a socket, loops, a sparse terabyte), in the manifest directory;
// the light corpus and an endless body from the URL; the light corpus as
// pushes. Each input must be refused with a message naming its file or
// source, the pods must keep their containers and processes, podsup's
// memory must stay bounded, and a good change must still apply afterwards.
func TestReliabilityHostileInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := newBodyServer(harness.SleeperPod("fromurl", harness.IdleCmd))
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	url := ts.URL + "/pods"

	e.Write("steady.yaml", harness.SleeperPod("steady", harness.IdleCmd))
	e.Binary = harness.ReleaseBinary(t)
	e.Start("--manifest-url", url, "--http-check-frequency", "200ms", "--profiling")
	sock := e.SocketClient()
	sock.WaitAnswer(t, "/manifests")
	sock.Must(t, "PUT", "/manifests/pushed", harness.SleeperPod("pushed", harness.IdleCmd), http.StatusOK)
	names := map[string]bool{"steady": true, "fromurl": true, "pushed": true}
	e.WaitConverged(names)
	before := e.Tasks()
	pid := e.Proc.Process.Pid
	rssBefore, _ := procMemory(t, pid)
	heapBefore, _ := e.goHeap(t)

	// The directory: every input at once, and the odd entries.
	var tried, refused int
	wantFile := map[string]string{}
	files, err := hostile.MakeFiles(e.Manifests, manifest.MaxManifestBytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		wantFile[f.Name] = f.Want
	}
	for _, in := range hostile.Inputs(manifest.MaxManifestBytes) {
		if err := os.WriteFile(filepath.Join(e.Manifests, in.Name+in.Ext), in.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		wantFile[in.Name+in.Ext] = in.Want
	}
	// On a machine whose cores are busy with other work, parsing the whole
	// corpus can take minutes, so this one wait has a limit of its own.
	start := time.Now()
	missing := e.waitLogged(wantFile, corpusPatience, func(name string) string { return "file=" + name + " " })
	for name := range missing {
		t.Errorf("file %s: no message containing %q in the log", name, wantFile[name])
	}
	tried, refused = len(wantFile), len(wantFile)-len(missing)
	harness.Record(t, "manifest files refused / tried", "%d / %d in %s", refused, tried, time.Since(start).Round(time.Second))

	// The URL: one body after the other.
	light := hostile.Light(manifest.MaxManifestBytes)
	urlRefused := 0
	for _, in := range append(light, hostile.Input{Name: "endless-body", Want: fmt.Sprintf("more than the limit of %d", manifest.MaxManifestBytes)}) {
		if in.Name == "endless-body" {
			srv.setEndless()
		} else {
			srv.set(in.Data)
		}
		srv.waitServed(t, 2)
		if len(e.waitLogged(map[string]string{in.Name: in.Want}, harness.Patience, func(string) string { return "manifest URL unusable" })) > 0 {
			t.Errorf("URL body %s: no message containing %q in the log", in.Name, in.Want)
			continue
		}
		urlRefused++
	}
	harness.Record(t, "URL bodies refused / tried", "%d / %d", urlRefused, len(light)+1)

	// The push API: each input, and names that are no names.
	pushRefused := 0
	for _, in := range light {
		code, body, err := sock.Do("PUT", "/manifests/"+in.Name, bytes.NewReader(in.Data))
		var status struct{ Message string }
		json.Unmarshal([]byte(body), &status)
		if err != nil || (code != http.StatusUnprocessableEntity && code != http.StatusRequestEntityTooLarge) ||
			!strings.Contains(status.Message, in.Name) || !strings.Contains(status.Message, in.Want) {
			t.Errorf("push %s: %d %v %.300s, want 422 or 413 naming it and containing %q", in.Name, code, err, body, in.Want)
			continue
		}
		pushRefused++
	}
	for _, name := range []string{"..%2F..%2Fetc%2Fpasswd", "UPPER", strings.Repeat("a", 300), "a.b"} {
		if code, body, err := sock.Do("PUT", "/manifests/"+name, strings.NewReader(harness.SleeperPod("x", harness.IdleCmd))); err != nil || code/100 != 4 {
			t.Errorf("push under name %.40q: %d %v %.300s, want a 4xx", name, code, err, body)
		}
	}
	stored, _ := os.ReadDir(filepath.Join(e.Root, "manifests-api"))
	if len(stored) != 1 || stored[0].Name() != "pushed.yaml" {
		t.Errorf("pushed manifests stored: %v, want only pushed.yaml", stored)
	}
	harness.Record(t, "pushes refused / tried", "%d / %d", pushRefused, len(light))

	// Nothing running was touched, and memory came back down.
	after := e.Tasks()
	if len(after) != len(before) || changedTasks(before, after) > 0 {
		t.Errorf("tasks changed:\nbefore %v\nafter  %v", before, after)
	}
	harness.Record(t, "running containers changed", "%d of %d", changedTasks(before, after), len(before))
	e.WaitHealthy("/healthz ok after the bad input")
	rssAfter, peak := procMemory(t, pid)
	heapAfter, heapSys := e.goHeap(t)
	harness.Record(t, "podsup Go heap in use before / after (after a GC)", "%d / %d MiB", heapBefore>>20, heapAfter>>20)
	harness.Record(t, "podsup Go heap obtained from the OS (peak)", "%d MiB", heapSys>>20)
	harness.Record(t, "podsup RSS before / after / peak (release build)", "%d / %d / %d MiB", rssBefore>>20, rssAfter>>20, peak>>20)
	if heapAfter > maxHostileHeap {
		t.Errorf("podsup holds %d MiB of heap after the corpus, more than %d MiB", heapAfter>>20, maxHostileHeap>>20)
	}

	// Once the inputs are gone, no problem is left and a change applies.
	for name := range wantFile {
		os.Remove(filepath.Join(e.Manifests, name))
	}
	srv.set([]byte(harness.SleeperPod("fromurl", harness.IdleCmd)))
	e.waitMetric("podsup_manifest_problems", 0)
	e.Write("after.yaml", harness.SleeperPod("after", harness.IdleCmd))
	names["after"] = true
	e.WaitConverged(names)
	if changedTasks(before, e.Tasks()) > 0 {
		t.Errorf("the pods that ran before changed once a new pod was added")
	}
}

// changedTasks counts the tasks of before that no longer run in now with
// the same process.
func changedTasks(before, now map[string]harness.TaskInfo) int {
	n := 0
	for id, tb := range before {
		if tn, ok := now[id]; !ok || tn.PID != tb.PID {
			n++
		}
	}
	return n
}

// procMemory returns a process's resident memory and its peak, in bytes.
func procMemory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak
}

// goHeap returns the Go heap podsup has in use after a garbage collection,
// and the heap it obtained from the OS, from /debug/pprof/heap (which
// needs --profiling).
func (e *env) goHeap(t *testing.T) (inUse, sys int64) {
	t.Helper()
	_, body, err := e.ReadOnlyClient().Do("GET", "/debug/pprof/heap?debug=1&gc=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "# HeapInuse = "); ok {
			inUse, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(l, "# HeapSys = "); ok {
			sys, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if inUse == 0 {
		t.Fatalf("no heap figures in /debug/pprof/heap: %.300s", body)
	}
	return inUse, sys
}

// waitLogged waits until, for each key of want, podsup's log holds a line
// containing line(key) and want[key] (as the log quotes it). It returns
// the keys it did not find.
func (e *env) waitLogged(want map[string]string, limit time.Duration, line func(key string) string) map[string]bool {
	missing := map[string]bool{}
	for deadline := time.Now().Add(limit); ; time.Sleep(200 * time.Millisecond) {
		data, _ := os.ReadFile(e.ProcLog.Name())
		lines := strings.Split(string(data), "\n")
		clear(missing)
		for key, w := range want {
			q := strconv.Quote(w)
			quoted, prefix := q[1:len(q)-1], line(key)
			found := false
			for _, l := range lines {
				if strings.Contains(l, prefix) && (strings.Contains(l, quoted) || strings.Contains(l, w)) {
					found = true
					break
				}
			}
			if !found {
				missing[key] = true
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
	}
}

// waitMetric waits until a metric of the read-only port has a value.
func (e *env) waitMetric(name string, want float64) {
	e.t.Helper()
	got := "no answer"
	for deadline := time.Now().Add(harness.Patience); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, body, err := e.ReadOnlyClient().Do("GET", "/metrics", nil)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				if got = v; v == strconv.FormatFloat(want, 'g', -1, 64) {
					return
				}
			}
		}
	}
	e.t.Errorf("metric %s is %s, want %g", name, got, want)
}

// bodyServer serves one manifest body, which the test changes, and counts
// the requests since the last change.
type bodyServer struct {
	mu      sync.Mutex
	body    []byte
	endless bool
	served  int
}

func newBodyServer(body string) *bodyServer { return &bodyServer{body: []byte(body)} }

func (s *bodyServer) set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.endless, s.served = body, false, 0
}

// setEndless serves a body that never ends.
func (s *bodyServer) setEndless() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endless, s.served = true, 0
}

// waitServed waits until the current body was served n times: podsup read
// it, and came back for more.
func (s *bodyServer) waitServed(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(harness.Patience); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s.mu.Lock()
		served := s.served
		s.mu.Unlock()
		if served >= n {
			return
		}
	}
	t.Fatalf("the manifest URL was not polled %d times within %s", n, harness.Patience)
}

func (s *bodyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body, endless := s.body, s.endless
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.served++
		s.mu.Unlock()
	}()
	if !endless {
		w.Write(body)
		return
	}
	chunk := bytes.Repeat([]byte("# an endless manifest\n"), 4096)
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}
