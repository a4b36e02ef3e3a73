package manifest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podsup/podsup/internal/hostile"
)

// maxMessage bounds the message that refuses any one manifest.
const maxMessage = 64 << 10

// checkRefusal fails unless err refuses a hostile input with a short
// message that names origin and says what is wrong.
func checkRefusal(t *testing.T, origin string, in hostile.Input, err error) {
	t.Helper()
	switch msg := fmt.Sprint(err); {
	case err == nil:
		t.Errorf("%s: accepted", in.Name)
	case !strings.Contains(msg, origin) || !strings.Contains(msg, in.Want):
		t.Errorf("%s: refused with %.300q, want it to name %s and contain %q", in.Name, msg, origin, in.Want)
	case len(msg) > maxMessage:
		t.Errorf("%s: a message of %d bytes", in.Name, len(msg))
	}
}

// TestHostileCorpusParse: every input of the hostile corpus is refused
// with a short message naming its origin and what is wrong.
//
// With the race detector, the inputs of a megabyte and more are left out:
// parsing them, one goroutine, took three minutes of CPU on a loaded
// machine and checks no concurrency. hack/test.sh runs this test again
// without it, on every input.
func TestHostileCorpusParse(t *testing.T) {
	for _, in := range hostile.Inputs(MaxManifestBytes) {
		t.Run(in.Name, func(t *testing.T) {
			if raceDetector && len(in.Data) >= 1<<20 {
				t.Skipf("%d bytes: parsed in hack/test.sh's run without the race detector", len(in.Data))
			}
			origin := in.Name + in.Ext
			start := time.Now()
			_, err := Parse(origin, in.Data, testStatic)
			checkRefusal(t, origin, in, err)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("not a manifest error: %T", err)
			}
			t.Logf("%d bytes refused in %s", len(in.Data), time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestHostileDirectory fills a manifest directory with the corpus and with
// entries that are no files at all (a FIFO, a device, loops...) beside one
// good manifest: the source must not block on any of them, must report each
// by its file, and must run the good pod.
func TestHostileDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a device file needs root")
	}
	dir := t.TempDir()
	files, err := hostile.MakeFiles(dir, MaxManifestBytes)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, f := range files {
		want[f.Name] = f.Want
	}
	for _, in := range hostile.Light(MaxManifestBytes) {
		os.WriteFile(filepath.Join(dir, in.Name+in.Ext), in.Data, 0o644)
		want[in.Name+in.Ext] = in.Want
	}
	os.WriteFile(filepath.Join(dir, "good.yaml"), []byte(podYAML("good", "good:1")), 0o644)

	h := startDir(t, dir)
	u := h.next()
	if got := len(u.Problems); got != len(want) {
		t.Fatalf("%d problems, want %d: %s", got, len(want), describeUpdate(u))
	}
	for _, p := range u.Problems {
		name := filepath.Base(p.Origin)
		if msg := p.Err.Error(); !strings.Contains(msg, name) || !strings.Contains(msg, want[name]) || len(msg) > maxMessage {
			t.Errorf("%s: %.300q, want it to name the file and contain %q", name, msg, want[name])
		}
	}
	if len(u.Pods) != 1 || u.Pods[0].Name != "good-node1" {
		t.Errorf("pods: %s", describeUpdate(u))
	}
}

// The sources' tests use the light part of the corpus: every input's cost
// is in Parse, which TestHostileCorpusParse gives the whole corpus.

// TestHostileURL serves the corpus from the manifest URL after a good
// manifest: each body is refused and the last good pods are kept.
func TestHostileURL(t *testing.T) {
	srv, ts := startManifestServer(t, false)
	s := newURLSource(t, ts.URL+"/pods")
	srv.set(200, podYAML("good", "good:1"))
	if u := s.Poll(t.Context()); len(u.Pods) != 1 || u.Stale {
		t.Fatalf("good body: %s", describeUpdate(u))
	}
	for _, in := range hostile.Light(MaxManifestBytes) {
		srv.set(200, string(in.Data))
		u := s.Poll(t.Context())
		if !u.Stale || len(u.Problems) != 1 {
			t.Errorf("%s: not refused: %s", in.Name, describeUpdate(u))
			continue
		}
		checkRefusal(t, ts.URL+"/pods", in, u.Problems[0].Err)
	}
}

// TestURLParsesABodyOnce polls a server serving the same broken body, then
// the same good one: each is parsed once.
func TestURLParsesABodyOnce(t *testing.T) {
	srv, ts := startManifestServer(t, false)
	s := newURLSource(t, ts.URL)
	for _, body := range []string{"kind: [", podYAML("good", "good:1")} {
		srv.set(200, body)
		first := s.Poll(t.Context())
		srv.set(200, body) // a new ETag: the server says it changed
		again := s.Poll(t.Context())
		if fingerprint(first) != fingerprint(again) || first.Stale != again.Stale {
			t.Errorf("%q: second poll %s, first %s", body, describeUpdate(again), describeUpdate(first))
		}
	}
	if s.parses != 2 {
		t.Errorf("%d bodies parsed, want 2", s.parses)
	}
}

// TestHostilePush pushes the corpus: each is refused and nothing is stored.
func TestHostilePush(t *testing.T) {
	dir := t.TempDir()
	p, err := NewPushSource(dir, Static{NodeName: "node1", Source: SourceAPI}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range hostile.Light(MaxManifestBytes) {
		_, err := p.Put(in.Name, in.Data)
		checkRefusal(t, "api:"+in.Name, in, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d files stored, want none: %v", len(entries), entries[0].Name())
	}
}

// TestProblemsAreCapped checks that a manifest with hundreds of thousands of
// problems or unknown fields lists MaxProblems of them and counts the rest.
func TestProblemsAreCapped(t *testing.T) {
	var bad, unknown strings.Builder
	bad.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n")
	unknown.WriteString(podYAML("a", "a:1"))
	const n = 5000
	for i := range n {
		fmt.Fprintf(&bad, "  - {name: C%d, image: b}\n", i)
		fmt.Fprintf(&unknown, "  typo%d: 1\n", i)
	}
	_, err := Parse("bad.yaml", []byte(bad.String()), testStatic)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != MaxProblems+1 {
		t.Fatalf("%d problems listed, want %d", len(list), MaxProblems+1)
	}
	if got, want := list[MaxProblems].Error(), fmt.Sprintf("bad.yaml: and %d more, not listed", n-MaxProblems); got != want {
		t.Errorf("last problem %q, want %q", got, want)
	}
	objs, err := Parse("unknown.yaml", []byte(unknown.String()), testStatic)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := objs.Warnings[len(objs.Warnings)-1].Msg, fmt.Sprintf("and %d more, not listed", n-MaxProblems); len(objs.Warnings) != MaxProblems+1 || got != want {
		t.Errorf("%d warnings ending %q, want %d ending %q", len(objs.Warnings), got, MaxProblems+1, want)
	}
}

// TestConcatCappedCarriesCounts merges lists that were each capped: the
// count of what was left out adds up.
func TestConcatCappedCarriesCounts(t *testing.T) {
	var a, b []*Error
	for i := range MaxProblems + 7 {
		a = appendCapped(a, "x", func() *Error { return newError("x", "", "", "a%d", i) })
		b = appendCapped(b, "x", func() *Error { return newError("x", "", "", "b%d", i) })
	}
	all := concatCapped(concatCapped(nil, "x", a), "x", b)
	if len(all) != MaxProblems+1 || all[MaxProblems].Msg != fmt.Sprintf("and %d more, not listed", MaxProblems+14) {
		t.Errorf("%d entries, last %q", len(all), all[len(all)-1].Msg)
	}
	if all[0].Msg != "a0" || all[MaxProblems-1].Msg != fmt.Sprintf("a%d", MaxProblems-1) {
		t.Errorf("first entries %q..%q, want a's first", all[0].Msg, all[MaxProblems-1].Msg)
	}
}

// TestPushRemovesUnfinishedWrites starts a push source over what a crash
// or a full disk leaves: a temporary file beside an intact manifest.
func TestPushRemovesUnfinishedWrites(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(podYAML("web", "web:1")), 0o600)
	os.WriteFile(filepath.Join(dir, tmpPrefix+"123"), []byte("apiVersion: v1\nkind: Po"), 0o600)
	p, err := NewPushSource(dir, Static{NodeName: "node1", Source: SourceAPI}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if names := p.Names(); len(names) != 1 || names[0] != "web" {
		t.Errorf("names %v, want [web]", names)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpPrefix+"123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unfinished write still there: %v", err)
	}
}
