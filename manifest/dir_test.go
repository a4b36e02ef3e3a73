package manifest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// quietForTests is the debounce the directory tests run with: the default, so
// they prove the shipped setting.
const quietForTests = DefaultQuiet

// quietSpell is how long the clock runs on to be sure no further update
// comes: past every quiet period and grace, and a look for a missing
// directory.
const quietSpell = removeGrace*quietForTests + missingDirPoll

func podYAML(name, image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  containers:\n  - name: app\n    image: %s\n", name, image)
}

// dirHarness runs a DirSource over a temporary directory on a fake clock
// and collects its updates. The clock stands still while a test changes
// the directory, so the source never acts on a state the test did not mean
// it to see however slow the machine is; next, none and advance run the
// clock on, each step once the source has caught up with the last.
type dirHarness struct {
	t       *testing.T
	dir     string
	clock   *clocktesting.FakeClock
	syncs   chan chan syncState
	markers int // marker files written by sync
	updates chan Update
	cancel  context.CancelFunc
	done    chan struct{}
	current string // the content last written by a test, for sed
}

func startDir(t *testing.T, dir string, opts ...DirOption) *dirHarness {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &dirHarness{
		t: t, dir: dir, clock: newFakeClock(), syncs: make(chan chan syncState),
		updates: make(chan Update, 100), cancel: cancel, done: make(chan struct{}),
	}
	opts = append([]DirOption{
		WithQuiet(quietForTests), WithResync(time.Hour), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithClock(h.clock), withSync(h.syncs),
	}, opts...)
	src := NewDirSource(dir, testStatic, opts...)
	go func() {
		defer close(h.done)
		src.Run(ctx, h.updates)
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *dirHarness) stop() {
	h.cancel()
	<-h.done
}

func (h *dirHarness) path(name string) string { return filepath.Join(h.dir, name) }

func (h *dirHarness) write(name, content string) {
	h.t.Helper()
	if err := os.WriteFile(h.path(name), []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// markerPrefix starts the names of sync's marker files: dotfiles, which
// are never manifests.
const markerPrefix = ".sync-"

// sync returns once the source has handled every change made to the
// directory so far and everything its clock has fired. It writes a marker
// file and asks the source until the source has handled the marker's
// event (inotify keeps events in order) or watches nothing.
func (h *dirHarness) sync() {
	h.t.Helper()
	first := h.markers + 1
	deadline := time.Now().Add(waitLimit)
	for try := 0; ; try++ {
		if try%20 == 0 {
			// A marker now and then, not once: one written just
			// before the source began to watch raises no event.
			h.markers++
			marker := h.path(fmt.Sprintf("%s%d", markerPrefix, h.markers))
			if os.WriteFile(marker, nil, 0o600) == nil {
				os.Remove(marker)
			}
		}
		st := h.ask()
		n, err := strconv.Atoi(strings.TrimPrefix(st.lastEvent, markerPrefix))
		if !st.watching || (strings.HasPrefix(st.lastEvent, markerPrefix) && err == nil && n >= first) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the source did not catch up within %s (last event %q)", waitLimit, st.lastEvent)
		}
		time.Sleep(time.Millisecond)
	}
}

// ask makes the source handle what its clock fired and say what it last
// handled.
func (h *dirHarness) ask() syncState {
	h.t.Helper()
	reply := make(chan syncState, 1)
	select {
	case h.syncs <- reply:
	case <-h.done:
		h.t.Fatal("the source stopped")
	case <-time.After(waitLimit):
		h.t.Fatalf("the source did not answer within %s", waitLimit)
	}
	return <-reply
}

// advance runs the clock on by d, in steps of the settle period so that
// the source looks at pending files when it would with a real clock.
func (h *dirHarness) advance(d time.Duration) {
	h.t.Helper()
	h.sync()
	for d > 0 {
		step := min(d, DefaultSettle)
		h.clock.Step(step)
		h.sync()
		d -= step
	}
}

// next runs the clock on until the source sends an update.
func (h *dirHarness) next() Update {
	h.t.Helper()
	for deadline := time.Now().Add(waitLimit); ; {
		h.sync()
		select {
		case u := <-h.updates:
			return u
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no update within %s (the clock at %s)", waitLimit, h.clock.Now())
		}
		h.clock.Step(DefaultSettle)
	}
}

// none asserts that no update comes while the clock runs through a quiet
// spell.
func (h *dirHarness) none() {
	h.t.Helper()
	h.advance(quietSpell)
	select {
	case u := <-h.updates:
		h.t.Fatalf("unexpected update: %s", describeUpdate(u))
	default:
	}
}

// describeUpdate is "name=image ..." for every pod, sorted, plus problems.
func describeUpdate(u Update) string {
	var parts []string
	for _, p := range u.Pods {
		parts = append(parts, strings.TrimSuffix(p.Name, "-node1")+"="+p.Spec.Containers[0].Image)
	}
	sort.Strings(parts)
	for _, p := range u.Problems {
		parts = append(parts, "problem:"+filepath.Base(p.Origin))
	}
	return strings.Join(parts, " ")
}

func (h *dirHarness) expect(want string) {
	h.t.Helper()
	if got := describeUpdate(h.next()); got != want {
		h.t.Fatalf("update %q, want %q", got, want)
	}
}

// TestWritePatterns saves a manifest in each way editors and tools do; every
// one must end in exactly one update carrying the final content.
func TestWritePatterns(t *testing.T) {
	patterns := []struct {
		name  string
		write func(h *dirHarness, content string)
	}{
		{"in place", func(h *dirHarness, c string) { h.write("web.yaml", c) }},
		{"truncate then write", func(h *dirHarness, c string) {
			f, err := os.OpenFile(h.path("web.yaml"), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				h.t.Fatal(err)
			}
			f.Sync()
			h.advance(quietForTests / 3)
			f.WriteString(c)
			f.Close()
		}},
		{"truncate and close, write later", func(h *dirHarness, c string) {
			// Two separate opens, as "> f; cat x >> f" in a script: the
			// empty file between them must not remove the pod.
			if err := os.Truncate(h.path("web.yaml"), 0); err != nil {
				h.t.Fatal(err)
			}
			h.advance(quietForTests / 2)
			f, err := os.OpenFile(h.path("web.yaml"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				h.t.Fatal(err)
			}
			f.WriteString(c)
			f.Close()
		}},
		{"slow writer pausing mid-file", func(h *dirHarness, c string) {
			// The pause is longer than the quiet period: only the check for
			// processes holding the file open for writing prevents a read of
			// the first half, which is itself a valid pod with no image.
			f, err := os.OpenFile(h.path("web.yaml"), os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				h.t.Fatal(err)
			}
			half := strings.Index(c, "    image:")
			f.WriteString(c[:half])
			h.advance(3 * quietForTests)
			f.WriteString(c[half:])
			f.Close()
		}},
		{"temp file then rename", func(h *dirHarness, c string) {
			h.write(".web.yaml.tmp", c)
			os.Rename(h.path(".web.yaml.tmp"), h.path("web.yaml"))
		}},
		{"vim", func(h *dirHarness, c string) {
			// vim's default save: probe file 4913, original renamed to a
			// ~ backup, new file written, backup removed.
			h.write("4913", "")
			os.Remove(h.path("4913"))
			os.Rename(h.path("web.yaml"), h.path("web.yaml~"))
			h.write("web.yaml", c)
			os.Remove(h.path("web.yaml~"))
		}},
		{"vim with a swap file", func(h *dirHarness, c string) {
			h.write(".web.yaml.swp", "vim swap")
			h.write("web.yaml", c)
			os.Remove(h.path(".web.yaml.swp"))
		}},
		{"emacs", func(h *dirHarness, c string) {
			os.Symlink("root@host.1234", h.path(".#web.yaml"))
			os.Rename(h.path("web.yaml"), h.path("web.yaml~"))
			h.write("web.yaml", c)
			os.Remove(h.path(".#web.yaml"))
		}},
		{"sed -i", func(h *dirHarness, c string) {
			old := strings.Split(h.current, "image: ")[1]
			nw := strings.Split(c, "image: ")[1]
			out, err := exec.Command("sed", "-i", "s|image: "+strings.TrimSpace(old)+"|image: "+strings.TrimSpace(nw)+"|", h.path("web.yaml")).CombinedOutput()
			if err != nil {
				h.t.Fatalf("sed: %v %s", err, out)
			}
		}},
		{"cp over", func(h *dirHarness, c string) {
			src := filepath.Join(h.t.TempDir(), "web.yaml")
			os.WriteFile(src, []byte(c), 0o644)
			if out, err := exec.Command("cp", src, h.path("web.yaml")).CombinedOutput(); err != nil {
				h.t.Fatalf("cp: %v %s", err, out)
			}
		}},
		{"kubeadm upgrade (move out, write new)", func(h *dirHarness, c string) {
			// The new one comes a moment later, within the grace a
			// vanished file has to come back.
			backup := h.t.TempDir()
			os.Rename(h.path("web.yaml"), filepath.Join(backup, "web.yaml"))
			h.advance(2 * quietForTests)
			h.write("web.yaml", c)
		}},
		{"chmod and touch only, then write", func(h *dirHarness, c string) {
			os.Chmod(h.path("web.yaml"), 0o600)
			now := time.Now()
			os.Chtimes(h.path("web.yaml"), now, now)
			h.write("web.yaml", c)
		}},
	}
	for _, p := range patterns {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			h := startDir(t, "")
			h.expect("")
			h.current = podYAML("web", "busybox:1")
			h.write("web.yaml", h.current)
			h.expect("web=busybox:1")
			h.none()
			p.write(h, podYAML("web", "busybox:2"))
			h.expect("web=busybox:2")
			h.none()
		})
	}
}

func TestBackupsNeverBecomePods(t *testing.T) {
	h := startDir(t, "")
	h.expect("")
	for _, name := range []string{"etcd.yaml.bak", "etcd.yaml~", ".etcd.yaml.swp", ".etcd.yaml", "etcd.yaml.orig",
		"etcd.yaml.tmp", "etcd.yaml.dpkg-old", "etcd.yaml.dpkg-dist", "etcd.yaml.rpmnew", "#etcd.yaml#", "4913", "README"} {
		h.write(name, podYAML("etcd", "etcd:1"))
	}
	h.none()
	h.write("etcd.yaml", podYAML("etcd", "etcd:1"))
	h.expect("etcd=etcd:1")
}

func TestRemoveAndRecreateFile(t *testing.T) {
	h := startDir(t, "")
	h.expect("")
	h.write("a.yaml", podYAML("a", "a:1"))
	h.write("b.yml", podYAML("b", "b:1"))
	h.write("c.json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"c"},"spec":{"containers":[{"name":"app","image":"c:1"}]}}`)
	h.expect("a=a:1 b=b:1 c=c:1")
	os.Remove(h.path("b.yml"))
	h.expect("a=a:1 c=c:1")
	h.none()
	h.write("b.yml", podYAML("b", "b:2"))
	h.expect("a=a:1 b=b:2 c=c:1")
}

// TestDeletedAtOnceMovedAwayLater: a deleted manifest's pod goes at the
// first look, one settle period after the deletion; a manifest moved away
// keeps its pod through the grace a save by rename needs, then loses it.
func TestDeletedAtOnceMovedAwayLater(t *testing.T) {
	h := startDir(t, "")
	h.expect("")
	h.write("a.yaml", podYAML("a", "a:1"))
	h.write("b.yaml", podYAML("b", "b:1"))
	h.expect("a=a:1 b=b:1")
	pending := func() string {
		select {
		case u := <-h.updates:
			return describeUpdate(u)
		default:
			return "no update"
		}
	}
	if err := os.Remove(h.path("a.yaml")); err != nil {
		t.Fatal(err)
	}
	h.advance(DefaultSettle)
	if got := pending(); got != "b=b:1" {
		t.Fatalf("a settle period after a.yaml was deleted: %s, want b=b:1", got)
	}
	if err := os.Rename(h.path("b.yaml"), filepath.Join(t.TempDir(), "b.yaml")); err != nil {
		t.Fatal(err)
	}
	h.advance(removeGrace*quietForTests - DefaultSettle)
	if got := pending(); got != "no update" {
		t.Fatalf("within the grace after b.yaml was moved away: %s, want no update", got)
	}
	h.expect("")
}

func TestInvalidEditKeepsLastGood(t *testing.T) {
	h := startDir(t, "")
	h.expect("")
	h.write("web.yaml", podYAML("web", "busybox:1"))
	h.expect("web=busybox:1")
	h.write("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app}]}\n")
	u := h.next()
	if got := describeUpdate(u); got != "web=busybox:1 problem:web.yaml" {
		t.Fatalf("update %q: want the last good pod and a problem", got)
	}
	if !strings.Contains(u.Problems[0].Err.Error(), "spec.containers[0].image: required") {
		t.Errorf("problem: %v", u.Problems[0].Err)
	}
	h.write("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, imagee: busybox:2}]}\n")
	u = h.next()
	if !strings.Contains(u.Problems[0].Err.Error(), "spec.containers[0].imagee: unknown field") {
		t.Errorf("the problem of a refused manifest lacks its typo: %v", u.Problems[0].Err)
	}
	h.write("web.yaml", podYAML("web", "busybox:3"))
	h.expect("web=busybox:3")
}

func TestDuplicateNamesFirstFileWins(t *testing.T) {
	h := startDir(t, "")
	h.expect("")
	h.write("b.yaml", podYAML("web", "from-b:1"))
	h.expect("web=from-b:1")
	h.write("a.yaml", podYAML("web", "from-a:1"))
	u := h.next()
	if got := describeUpdate(u); got != "web=from-a:1 problem:b.yaml" {
		t.Fatalf("update %q", got)
	}
	if !strings.Contains(u.Problems[0].Err.Error(), "already declared by a.yaml") {
		t.Errorf("problem: %v", u.Problems[0].Err)
	}
}

func TestOddFiles(t *testing.T) {
	h := startDir(t, "")
	h.expect("")
	if err := syscall.Mkfifo(h.path("fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := h.next()
	if got := describeUpdate(u); got != "problem:fifo.yaml" || !strings.Contains(u.Problems[0].Err.Error(), "not a regular file (a FIFO)") {
		t.Fatalf("fifo: %q %v", got, u.Problems)
	}
	os.Symlink("loop.yaml", h.path("loop.yaml"))
	if got := describeUpdate(h.next()); got != "problem:fifo.yaml problem:loop.yaml" {
		t.Fatalf("symlink loop: %q", got)
	}
	os.Mkdir(h.path("dir.yaml"), 0o755)
	if got := describeUpdate(h.next()); got != "problem:dir.yaml problem:fifo.yaml problem:loop.yaml" {
		t.Fatalf("directory: %q", got)
	}
	// A symlink to a file is followed.
	target := filepath.Join(t.TempDir(), "real.yaml")
	os.WriteFile(target, []byte(podYAML("linked", "l:1")), 0o644)
	os.Symlink(target, h.path("linked.yaml"))
	if got := describeUpdate(h.next()); got != "linked=l:1 problem:dir.yaml problem:fifo.yaml problem:loop.yaml" {
		t.Fatalf("symlink: %q", got)
	}
}

// TestResyncFindsUnwatchedChanges changes a symlink's target, which lives
// outside the watched directory and so raises no event: the periodic
// re-list must find it.
func TestResyncFindsUnwatchedChanges(t *testing.T) {
	target := filepath.Join(t.TempDir(), "real.yaml")
	os.WriteFile(target, []byte(podYAML("linked", "l:1")), 0o644)
	dir := t.TempDir()
	os.Symlink(target, filepath.Join(dir, "linked.yaml"))
	h := startDir(t, dir, WithResync(500*time.Millisecond))
	h.expect("linked=l:1")
	os.WriteFile(target, []byte(podYAML("linked", "l:2")), 0o644)
	h.expect("linked=l:2")
}

func TestMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	h := startDir(t, dir)
	u := h.next()
	if len(u.Pods) != 0 || len(u.Problems) != 1 {
		t.Fatalf("missing at start: %q", describeUpdate(u))
	}
	os.Mkdir(dir, 0o755)
	h.expect("")
	h.write("web.yaml", podYAML("web", "busybox:1"))
	h.expect("web=busybox:1")

	// Deleted: the pods stay while it is gone, and a problem says why.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if got := describeUpdate(h.next()); got != "web=busybox:1 problem:manifests" {
		t.Fatalf("deleted: %q", got)
	}
	h.none()
	// Re-created with other content: picked up again.
	os.Mkdir(dir, 0o755)
	h.write("db.yaml", podYAML("db", "db:1"))
	h.expect("db=db:1")
}
