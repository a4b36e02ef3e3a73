package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeFetch is a download that waits until the test releases it, and
// records who asked for it.
type fakeFetch struct {
	mu       sync.Mutex
	calls    []string // image and credential source
	running  int
	peak     int
	release  map[string]chan error // by image
	canceled atomic.Int32
}

func newFakeFetch() *fakeFetch { return &fakeFetch{release: map[string]chan error{}} }

func (f *fakeFetch) gate(name string) chan error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.release[name] == nil {
		f.release[name] = make(chan error, 10)
	}
	return f.release[name]
}

func (f *fakeFetch) fetch(ctx context.Context, name string, cred *Credential, t *tracker) (containerd.Image, error) {
	src := "anonymous"
	if cred != nil {
		src = cred.Source
	}
	f.mu.Lock()
	f.calls = append(f.calls, name+" "+src)
	f.running++
	f.peak = max(f.peak, f.running)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	select {
	case err := <-f.gate(name):
		return nil, err
	case <-ctx.Done():
		f.canceled.Add(1)
		return nil, ctx.Err()
	}
}

func (f *fakeFetch) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// waitFor waits for what the puller's goroutines do on their own; only a
// puller that never does it makes it wait long.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func testCtx() context.Context { return namespaces.WithNamespace(context.Background(), "test") }

func newTestPuller(t *testing.T, f *fakeFetch, opts ...PullerOption) *Puller {
	t.Helper()
	p, err := NewPuller(nil, append([]PullerOption{withFetch(f.fetch), WithPullerLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPullSharesOneDownload: three container starts want the same image;
// one download serves them all.
func TestPullSharesOneDownload(t *testing.T) {
	f := newFakeFetch()
	p := newTestPuller(t, f)
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			_, err := p.Pull(testCtx(), "docker.io/library/a:1")
			errs <- err
		}()
	}
	waitFor(t, "three waiters", func() bool { ps := p.Pulls(); return len(ps) == 1 && ps[0].Waiters == 3 })
	f.gate("docker.io/library/a:1") <- nil
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := f.callCount(); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
	if len(p.Pulls()) != 0 {
		t.Errorf("finished pull still listed: %+v", p.Pulls())
	}
}

func regcred(name, user, pass string) *v1.Secret {
	return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{"reg.io":{"auth":"` + b64(user+":"+pass) + `"}}}`)}}
}

// TestPullDifferentCredentials: pods with different credentials for the same
// image do not share a download, so no pod gets an image through another's
// credentials while both pull.
func TestPullDifferentCredentials(t *testing.T) {
	f := newFakeFetch()
	p := newTestPuller(t, f)
	done := make(chan error, 2)
	go func() { _, err := p.Pull(testCtx(), "reg.io/app:1"); done <- err }()
	go func() {
		_, err := p.Pull(testCtx(), "reg.io/app:1", WithPullSecrets([]*v1.Secret{regcred("regcred", "u", "pw")}))
		done <- err
	}()
	waitFor(t, "two downloads", func() bool { return f.callCount() == 2 })
	f.gate("reg.io/app:1") <- nil
	f.gate("reg.io/app:1") <- nil
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPullLimits: --serialize-image-pulls and --max-parallel-image-pulls
// bound the downloads at once; the others wait, listed as Waiting.
func TestPullLimits(t *testing.T) {
	for _, limit := range []int{1, 2} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			f := newFakeFetch()
			p := newTestPuller(t, f, WithMaxParallelPulls(limit))
			names := []string{"reg.io/a:1", "reg.io/b:1", "reg.io/c:1"}
			done := make(chan error, len(names))
			for _, n := range names {
				go func() { _, err := p.Pull(testCtx(), n); done <- err }()
			}
			waitFor(t, "the first downloads", func() bool { return f.callCount() == limit && len(p.Pulls()) == 3 })
			phases := map[PullPhase]int{}
			for _, pr := range p.Pulls() {
				phases[pr.Phase]++
			}
			if phases[PullRunning] != limit || phases[PullWaiting] != 3-limit {
				t.Errorf("phases %v, want %d running", phases, limit)
			}
			for _, n := range names {
				f.gate(n) <- nil
			}
			for range names {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			if f.peak != limit {
				t.Errorf("%d downloads at once, want %d", f.peak, limit)
			}
		})
	}
}

// TestPullProgress steps the clock through a download: the listener hears
// the start, the bytes every interval, and the end.
func TestPullProgress(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	step, ready := make(chan struct{}), make(chan struct{})
	fetch := func(ctx context.Context, name string, cred *Credential, tr *tracker) (containerd.Image, error) {
		tr.add(digest.FromString("config"), 2*mib, true)
		tr.add(digest.FromString("layer"), 30*mib, false)
		close(ready)
		<-step
		tr.add(digest.FromString("layer"), 30*mib, true)
		return nil, nil
	}
	p, err := NewPuller(nil, withFetch(fetch), WithPullerLogger(quiet), WithPullerClock(clk), WithProgressInterval(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	heard := make(chan PullProgress, 10)
	done := make(chan error)
	go func() {
		_, err := p.Pull(testCtx(), "reg.io/big:1", WithProgress(func(pr PullProgress) { heard <- pr }))
		done <- err
	}()
	if pr := <-heard; pr.Phase != PullRunning || pr.Image != "reg.io/big:1" {
		t.Fatalf("first report %+v, want Pulling", pr)
	}
	<-ready
	clk.Step(10 * time.Second)
	pr := <-heard
	if pr.Phase != PullRunning || pr.Done != 2*mib || pr.Total != 32*mib || pr.Bytes() != "2.0 MiB of 32.0 MiB (6%)" {
		t.Errorf("progress %+v (%s)", pr, pr.Bytes())
	}
	if ps := p.Pulls(); len(ps) != 1 || ps[0].Done != 2*mib || ps[0].Elapsed != 10*time.Second {
		t.Errorf("Pulls() = %+v", ps)
	}
	clk.Step(5 * time.Second)
	close(step)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pr = <-heard
	if pr.Phase != PullDone || pr.Done != 32*mib || pr.Total != 32*mib || pr.Elapsed != 15*time.Second {
		t.Errorf("last report %+v", pr)
	}
}

// TestPullStall: an attempt that gets no byte for the stall timeout is
// given up, with a message that says so; one that progresses is not.
func TestPullStall(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	progress, added := make(chan int64), make(chan struct{})
	fetch := func(ctx context.Context, name string, cred *Credential, tr *tracker) (containerd.Image, error) {
		for {
			select {
			case n := <-progress:
				tr.add(digest.FromString(fmt.Sprint(n)), n, true)
				added <- struct{}{}
			case <-ctx.Done():
				return nil, fmt.Errorf("fetch: %w", ctx.Err())
			}
		}
	}
	p, err := NewPuller(nil, withFetch(fetch), WithPullerLogger(quiet), WithPullerClock(clk),
		WithProgressInterval(10*time.Second), WithStallTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	heard := make(chan PullProgress, 100)
	done := make(chan error)
	go func() {
		_, err := p.Pull(testCtx(), "reg.io/slow:1", WithProgress(func(pr PullProgress) { heard <- pr }))
		done <- err
	}()
	<-heard // started
	waitFor(t, "the progress ticker", clk.HasWaiters)
	var sum int64
	for i := int64(1); i <= 10; i++ { // 100 s in all, some bytes every 10 s
		progress <- i
		<-added
		sum += i
		clk.Step(10 * time.Second)
		if pr := <-heard; pr.Done != sum {
			t.Fatalf("report %d: %d bytes, want %d", i, pr.Done, sum)
		}
	}
	for i := 0; i < 5; i++ { // 50 s without a byte: reported, not given up
		clk.Step(10 * time.Second)
		<-heard
	}
	clk.Step(10 * time.Second)
	select {
	case err := <-done:
		if err == nil || err.Error() != "pull stalled: no progress for 1m0s" {
			t.Errorf("error %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a stalled pull was not given up")
	}
}

// TestPullCredentialOrder: the pod's pull secrets are tried before the
// node's config.json; an error names where each credential came from and
// never contains one.
func TestPullCredentialOrder(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"auths":{"reg.io":{"auth":"`+b64("node:node-pw")+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var tried []string
	var fail atomic.Bool
	fetch := func(ctx context.Context, name string, cred *Credential, tr *tracker) (containerd.Image, error) {
		if cred == nil {
			tried = append(tried, "anonymous")
			return nil, nil
		}
		tried = append(tried, cred.Source)
		if cred.Username == "pod" || fail.Load() {
			return nil, fmt.Errorf("401 Unauthorized (sent %s)", cred.Secret)
		}
		return nil, nil
	}
	p, err := NewPuller(nil, withFetch(fetch), WithPullerLogger(quiet), WithCredentialFile(NewCredentialFile(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	secrets := WithPullSecrets([]*v1.Secret{regcred("regcred", "pod", "pod-pw"), nil})
	if _, err := p.Pull(testCtx(), "reg.io/app:1", secrets); err != nil {
		t.Fatal(err)
	}
	if strings.Join(tried, ",") != "secret default/regcred,"+cfg {
		t.Errorf("tried %v", tried)
	}

	tried, _ = nil, fail.Swap(true)
	_, err = p.Pull(testCtx(), "reg.io/app:1", secrets)
	want := "with credentials from secret default/regcred: 401 Unauthorized (sent [redacted]); with credentials from " + cfg + ": 401 Unauthorized (sent [redacted])"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}

	tried = nil
	if _, err := p.Pull(testCtx(), "quay.io/other:1"); err != nil || strings.Join(tried, ",") != "anonymous" {
		t.Errorf("an image no credential matches: tried %v, %v", tried, err)
	}
}

// TestPullCancel: a waiter that gives up returns at once without stopping
// the download for the others; when the last one gives up, the download
// stops.
func TestPullCancel(t *testing.T) {
	f := newFakeFetch()
	p := newTestPuller(t, f)
	ctxA, cancelA := context.WithCancel(testCtx())
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { _, err := p.Pull(ctxA, "reg.io/a:1"); errA <- err }()
	go func() { _, err := p.Pull(testCtx(), "reg.io/a:1"); errB <- err }()
	waitFor(t, "two waiters", func() bool { ps := p.Pulls(); return len(ps) == 1 && ps[0].Waiters == 2 })
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v", err)
	}
	if f.canceled.Load() != 0 {
		t.Error("the download stopped while another waits for it")
	}
	f.gate("reg.io/a:1") <- nil
	if err := <-errB; err != nil {
		t.Errorf("remaining waiter: %v", err)
	}

	ctxC, cancelC := context.WithCancel(testCtx())
	errC := make(chan error, 1)
	go func() { _, err := p.Pull(ctxC, "reg.io/c:1"); errC <- err }()
	waitFor(t, "the download", func() bool { return f.callCount() == 2 })
	cancelC()
	<-errC
	waitFor(t, "the download to stop", func() bool { return f.canceled.Load() == 1 })
	waitFor(t, "the pull to go", func() bool { return len(p.Pulls()) == 0 })
}
