package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// harness runs managers over one root directory with fake plugins and
// namespaces that are plain files, so it needs no root.
type harness struct {
	t       *testing.T
	fp      *fakePlugins
	root    string
	confDir string
	ns      *fileNS
}

func newHarness(t *testing.T, conflist string) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		fp:      newFakePlugins(t, "fake", "fake2", "fakeportmap", "loopback", "bridge", "portmap"),
		root:    t.TempDir(),
		confDir: t.TempDir(),
		ns:      &fileNS{},
	}
	if conflist != "" {
		writeFiles(t, h.confDir, map[string]string{"10-test.conflist": conflist})
	}
	return h
}

// manager starts a manager, as podsup does at start-up.
func (h *harness) manager(opts ...Option) *Manager {
	h.t.Helper()
	base := []Option{
		WithRootDir(h.root), WithConfDir(h.confDir), WithBinDirs([]string{h.fp.binDir}),
		WithLogger(discard), withNetNS(h.ns),
	}
	m, err := New(append(base, opts...)...)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// namespaces lists the namespace files under the root.
func (h *harness) namespaces() []string {
	h.t.Helper()
	return dirNames(h.t, filepath.Join(h.root, "netns"))
}

// cached lists libcni's cache entries as "network/ifname/container".
func (h *harness) cached(m *Manager) []string {
	h.t.Helper()
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, a := range atts {
		out = append(out, a.Network+"/"+a.IfName+"/"+a.ContainerID)
	}
	return out
}

// assertNothingOf fails if anything of the sandboxes is left.
func (h *harness) assertNothingOf(m *Manager, ids ...string) {
	h.t.Helper()
	if pids := strayPlugins("/proc", m.opts.netnsDir()); len(pids) > 0 {
		h.t.Errorf("plugins %v still run", pids)
	}
	for _, id := range ids {
		for _, held := range h.fp.held() {
			if strings.Contains(held, "-"+id+"-") {
				h.t.Errorf("%s: plugin still holds %s", id, held)
			}
		}
		if slices.Contains(h.namespaces(), id) {
			h.t.Errorf("%s: namespace left", id)
		}
		for _, c := range h.cached(m) {
			if strings.HasSuffix(c, "/"+id) {
				h.t.Errorf("%s: cache entry %s left", id, c)
			}
		}
		if _, err := m.Status(context.Background(), id); !errors.Is(err, ErrNotFound) {
			h.t.Errorf("%s: Status = %v, want ErrNotFound", id, err)
		}
	}
}

func TestSetUpAndTearDown(t *testing.T) {
	h := newHarness(t, fakeConflist)
	m := h.manager()
	ctx := context.Background()
	p := testPod("sb1")
	p.PortMappings = []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}

	res, err := m.SetUp(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	wantNS := filepath.Join(h.root, "netns", "sb1")
	if res.NetNS != wantNS || res.Interface != "eth0" || fmt.Sprint(res.IPs) != "[10.1.0.5]" {
		t.Errorf("result %+v; want netns %s, eth0, the pod's IP only (not the host side's)", res, wantNS)
	}
	if !h.ns.valid(wantNS) {
		t.Errorf("no namespace at %s", wantNS)
	}
	wantAdds := []string{"ADD loopback lo sb1", "ADD fake eth0 sb1", "ADD fakeportmap eth0 sb1"}
	if got := h.fp.summary(); !reflect.DeepEqual(got, wantAdds) {
		t.Errorf("calls %q, want %q", got, wantAdds)
	}
	for _, c := range h.fp.calls() {
		if c.Args != "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sb1;K8S_POD_UID=uid-1" {
			t.Errorf("%s: CNI_ARGS %q", c.Type, c.Args)
		}
		if c.Netns != wantNS {
			t.Errorf("%s: CNI_NETNS %q", c.Type, c.Netns)
		}
		var rc map[string]json.RawMessage
		_ = json.Unmarshal(c.RuntimeConfig, &rc)
		_, hasPorts := rc["portMappings"]
		if hasPorts != (c.Type == "fakeportmap") {
			t.Errorf("%s: runtimeConfig %s; only the plugin with the capability gets portMappings", c.Type, c.RuntimeConfig)
		}
	}

	h.fp.reset()
	again, err := m.SetUp(ctx, p)
	wantChecks := []string{"CHECK fake eth0 sb1", "CHECK fakeportmap eth0 sb1", "CHECK loopback lo sb1"}
	if got := h.fp.summary(); err != nil || !reflect.DeepEqual(again, res) || !reflect.DeepEqual(got, wantChecks) {
		t.Errorf("second SetUp: %+v, %v, calls %q; want the cached result after %q", again, err, got, wantChecks)
	}
	if st, err := m.Status(ctx, "sb1"); err != nil || !reflect.DeepEqual(st, res) {
		t.Errorf("Status: %+v, %v", st, err)
	}
	res.IPs[0][0] = 99 // the caller's copy
	if st, _ := m.Status(ctx, "sb1"); fmt.Sprint(st.IPs) != "[10.1.0.5]" {
		t.Errorf("changing a result changed the manager's: %v", st.IPs)
	}
	restarted := h.manager()
	if st, err := restarted.Status(ctx, "sb1"); err != nil || fmt.Sprint(st.IPs) != "[10.1.0.5]" || st.NetNS != wantNS {
		t.Errorf("Status after a restart: %+v, %v; want the result from libcni's cache", st, err)
	}

	h.fp.reset()
	if err := restarted.TearDown(ctx, "sb1"); err != nil {
		t.Fatal(err)
	}
	wantDels := []string{"DEL fakeportmap eth0 sb1", "DEL fake eth0 sb1", "DEL loopback lo sb1"}
	if got := h.fp.summary(); !reflect.DeepEqual(got, wantDels) {
		t.Errorf("calls %q, want %q", got, wantDels)
	}
	for _, c := range h.fp.calls() {
		if c.IfName == "eth0" && !c.PrevResult {
			t.Errorf("%s: DEL without the cached result", c.Type)
		}
	}
	h.assertNothingOf(restarted, "sb1")

	h.fp.reset()
	if err := m.TearDown(ctx, "sb1"); err != nil || len(h.fp.calls()) != 0 {
		t.Errorf("second TearDown: %v, calls %q; want success and no plugin run", err, h.fp.summary())
	}
	h.assertNothingOf(m, "sb1")
	if err := m.TearDown(ctx, "never-seen"); err != nil {
		t.Errorf("TearDown of an unknown sandbox: %v", err)
	}
	if err := m.TearDown(ctx, "../x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("TearDown of a bad ID: %v, want ErrInvalid", err)
	}
}

// TestSetUpTellsOfTheNamespaceFirst: Made hears of the network namespace
// once it exists and before any plugin runs, so that the sandbox can be
// created during the ADD; not when the network is already set up.
func TestSetUpTellsOfTheNamespaceFirst(t *testing.T) {
	h := newHarness(t, fakeConflist)
	m := h.manager()
	p := testPod("sb1")
	var made []string
	p.Made = func(netns, userns string) {
		made = append(made, fmt.Sprintf("%s %q: exists %t, plugin calls %q", netns, userns, h.ns.valid(netns), h.fp.summary()))
	}
	res, err := m.SetUp(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("%s \"\": exists true, plugin calls []", res.NetNS)}
	if !reflect.DeepEqual(made, want) {
		t.Errorf("Made heard %q, want %q", made, want)
	}
	made = nil
	if _, err := m.SetUp(context.Background(), p); err != nil || made != nil {
		t.Errorf("SetUp of a network set up: %v, Made heard %q; want nothing", err, made)
	}
}

// TestSetUpAfterPartialTearDown sets a sandbox up again after a TearDown
// that deleted the pod's interface and was cut short before libcni dropped
// its cache (a cancelled sync, podsup killed): the cache must not be
// trusted, or the pod runs without a network for good.
func TestSetUpAfterPartialTearDown(t *testing.T) {
	h := newHarness(t, fakeConflist)
	m := h.manager()
	ctx := context.Background()
	p := testPod("sb1")
	if _, err := m.SetUp(ctx, p); err != nil {
		t.Fatal(err)
	}
	// What the bridge plugin's DEL does before libcni forgets the ADD.
	held := filepath.Join(h.fp.dir, "held", "fake-sb1-eth0")
	if err := os.Remove(held); err != nil {
		t.Fatal(err)
	}
	h.fp.reset()
	if _, err := h.manager().SetUp(ctx, p); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CHECK fake eth0 sb1", // fails: nothing held
		"DEL fakeportmap eth0 sb1", "DEL fake eth0 sb1", "DEL loopback lo sb1",
		"ADD loopback lo sb1", "ADD fake eth0 sb1", "ADD fakeportmap eth0 sb1",
	}
	if got := h.fp.summary(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
	if _, err := os.Stat(held); err != nil {
		t.Errorf("the pod network was not added again: %v", err)
	}
}

func TestSetUpFailureLeavesNothing(t *testing.T) {
	conflist := func(plugins ...string) string {
		return `{"cniVersion":"1.0.0","name":"fakenet","plugins":[` + strings.Join(plugins, ",") + `]}`
	}
	const good = `{"type":"fake","fakeIP":"10.1.0.5/24"}`
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelExpired()
	tests := []struct {
		name     string
		conflist string
		ctx      context.Context
		hangs    string // the plugin whose time limit is run out once it hangs
		nsErr    error
		want     []string // parts of the error
		wantIs   error
	}{
		{
			name:     "second plugin fails",
			conflist: conflist(good, `{"type":"fake2","fakeFail":"ADD"}`),
			want:     []string{`network setup failed for pod default/web: plugin type="fake2" failed (add)`, "fake fake2 refuses ADD"},
		},
		{
			name:     "plugin missing",
			conflist: conflist(good, `{"type":"nosuchplugin"}`),
			want:     []string{`network fakenet: plugin type="nosuchplugin": failed to find plugin "nosuchplugin" in path [` + "/"},
		},
		{
			name:     "plugin hangs",
			conflist: conflist(good, `{"type":"fake2","fakeHang":true}`),
			hangs:    "fake2",
			want:     []string{`plugin type="fake2" failed (add)`, "fake2 did not finish within 1m0s"},
			wantIs:   context.DeadlineExceeded,
		},
		{
			name:     "caller gives up",
			conflist: conflist(good),
			ctx:      cancelled,
			want:     []string{"interrupted"},
			wantIs:   context.Canceled,
		},
		{
			name:     "caller's deadline passes",
			conflist: conflist(good),
			ctx:      expired,
			want:     []string{"loopback interrupted"}, // not the plugin's own time limit
			wantIs:   context.DeadlineExceeded,
		},
		{
			name:     "namespace cannot be made",
			conflist: conflist(good),
			nsErr:    errors.New("out of namespaces"),
			want:     []string{"out of namespaces"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.conflist)
			h.ns.failCreate = tt.nsErr
			// Plugins' time runs out only when the test says so.
			clk := testingclock.NewFakeClock(time.Now())
			m := h.manager(WithClock(clk), WithPluginTimeout(time.Minute))
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			done := make(chan error, 1)
			go func() {
				_, err := m.SetUp(ctx, testPod("sb1"))
				done <- err
			}()
			if tt.hangs != "" {
				waitFor(t, done, "plugin "+tt.hangs+" to hang", func() bool { return h.fp.hanging(tt.hangs) })
				clk.Step(time.Minute)
			}
			err := <-done
			if err == nil {
				t.Fatal("SetUp succeeded")
			}
			if !errors.Is(err, ErrNetworkSetup) || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
				t.Errorf("error %v: want ErrNetworkSetup (and %v)", err, tt.wantIs)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			h.assertNothingOf(m, "sb1")
		})
	}
}

// waitFor polls cond until it holds. It fails the test if cond does not hold
// within a minute or if done reports first, passing the report on.
func waitFor(t *testing.T, done chan error, what string, cond func() bool) {
	t.Helper()
	limit := time.After(time.Minute)
	for !cond() {
		select {
		case err := <-done:
			t.Fatalf("finished (%v) before %s", err, what)
		case <-limit:
			t.Fatalf("waited a minute for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestFailedRollbackKeepsNamespaceForTearDown(t *testing.T) {
	h := newHarness(t, "")
	stuck := filepath.Join(t.TempDir(), "stuck")
	writeFiles(t, filepath.Dir(stuck), map[string]string{"stuck": ""})
	writeFiles(t, h.confDir, map[string]string{"10-test.conflist": `{"cniVersion":"1.0.0","name":"fakenet","plugins":[` +
		`{"type":"fake","fakeIP":"10.1.0.5/24","fakeFail":"DEL","fakeFailWhile":"` + stuck + `"},` +
		`{"type":"fake2","fakeFail":"ADD"}]}`})
	m := h.manager()
	ctx := context.Background()

	_, err := m.SetUp(ctx, testPod("sb1"))
	if !errors.Is(err, ErrNetworkSetup) || !strings.Contains(err.Error(), "could not delete network fakenet") {
		t.Fatalf("SetUp: %v; want the failure and the failed undo", err)
	}
	if !slices.Contains(h.namespaces(), "sb1") || !slices.Contains(h.fp.held(), "fake-sb1-eth0") {
		t.Fatalf("namespaces %v, held %v: want the namespace kept while the plugin holds its address", h.namespaces(), h.fp.held())
	}
	if err := m.TearDown(ctx, "sb1"); err == nil {
		t.Fatal("TearDown succeeded while DEL fails")
	}
	if !slices.Contains(h.namespaces(), "sb1") {
		t.Fatal("failed TearDown removed the namespace")
	}
	os.Remove(stuck)
	if err := m.TearDown(ctx, "sb1"); err != nil {
		t.Fatal(err)
	}
	h.assertNothingOf(m, "sb1")
}

func TestSetUpConcurrently(t *testing.T) {
	h := newHarness(t, fakeConflist)
	m := h.manager()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			// Two calls per sandbox race; one sets it up, the other gets the result.
			_, err := m.SetUp(context.Background(), testPod(fmt.Sprintf("sb%d", i/2)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	adds := 0
	for _, c := range h.fp.calls() {
		if c.Cmd == "ADD" && c.Type == "fake" {
			adds++
		}
	}
	if adds != 10 {
		t.Errorf("%d ADDs for 10 sandboxes", adds)
	}
}

func TestConfigurationChanges(t *testing.T) {
	h := newHarness(t, "")
	m := h.manager()
	ctx := context.Background()
	if got := m.Network(); got != "built-in default podsup (10.86.0.0/16)" {
		t.Errorf("Network() = %q", got)
	}
	if _, err := m.SetUp(ctx, testPod("old")); err != nil {
		t.Fatal(err)
	}

	writeFiles(t, h.confDir, map[string]string{"10-test.conflist": fakeConflist})
	h.fp.reset()
	if _, err := m.SetUp(ctx, testPod("new")); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Network(), "from "+filepath.Join(h.confDir, "10-test.conflist"); got != want {
		t.Errorf("Network() = %q, want %q", got, want)
	}
	if got := h.fp.summary(); !slices.Contains(got, "ADD fake eth0 new") {
		t.Errorf("calls %q: the new pod did not get the new network", got)
	}

	h.fp.reset()
	if err := m.TearDown(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	want := []string{"DEL portmap eth0 old", "DEL bridge eth0 old", "DEL loopback lo old"}
	if got := h.fp.summary(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls %q, want %q: the old pod is torn down with the network it was added to", got, want)
	}

	writeFiles(t, h.confDir, map[string]string{"05-broken.conflist": "{"})
	h.fp.reset()
	_, err := m.SetUp(ctx, testPod("third"))
	if !errors.Is(err, ErrNetworkSetup) || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "05-broken.conflist: ") {
		t.Errorf("SetUp with a broken first file: %v", err)
	}
	if len(h.fp.calls()) != 0 || slices.Contains(h.namespaces(), "third") {
		t.Errorf("a broken configuration ran plugins %q or left a namespace %v", h.fp.summary(), h.namespaces())
	}
	os.Remove(filepath.Join(h.confDir, "05-broken.conflist"))
	if _, err := m.SetUp(ctx, testPod("third")); err != nil {
		t.Errorf("SetUp once the file is gone: %v", err)
	}
}
