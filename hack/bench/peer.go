package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/podsup/podsup/cni"
	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/internal/testenv/kube"
	"github.com/podsup/podsup/volume"
)

// peer is a supervisor under measure: it runs the pods whose manifests are
// in a directory, on the bench's containerd, in a namespace of its own.
type peer struct {
	name  string
	ns    string
	start func(manifests string, profiling bool) (*session, error)
	// keeps says the peer leaves removed pods' containers to a garbage
	// collector (the kubelet), so the session's stop removes them; podsup
	// deletes them once their network is torn down, and must not be
	// stopped before.
	keeps bool
}

// session is one running supervisor; stop ends it and removes its pods
// and everything it made.
type session struct {
	pid   int
	pprof string // base URL of its pprof handlers, if it serves them
	stop  func()
}

// podsupPeer runs podsup as shipped on the bench's containerd.
func podsupPeer(bin, address, ns, cniDir string) *peer {
	return &peer{name: "podsup", ns: ns, start: func(manifests string, profiling bool) (*session, error) {
		dir, err := os.MkdirTemp("", "bench-podsup-")
		if err != nil {
			return nil, err
		}
		ro := freeAddr()
		args := []string{"run", "--manifests", manifests, "--root-dir", filepath.Join(dir, "root"), "--log-dir", filepath.Join(dir, "logs"),
			"--containerd-address", address, "--containerd-namespace", ns, "--node-name", "bench",
			"--read-only-address", ro, "--healthz-address", "", "--cni-conf-dir", cniDir}
		if profiling {
			args = append(args, "--profiling")
		}
		cmd := exec.Command(bin, args...)
		logFile, err := os.Create(filepath.Join(dir, "podsup.log"))
		if err != nil {
			return nil, err
		}
		defer logFile.Close()
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start podsup: %w", err)
		}
		s := &session{pid: cmd.Process.Pid, pprof: "http://" + ro + "/debug/pprof", stop: func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			// What podsup mounted there: pods' /dev/shm, the netns directory.
			if err := volume.RemoveAll(dir); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		}}
		if err := waitHTTP("http://" + ro + "/pods"); err != nil {
			s.stop()
			return nil, fmt.Errorf("podsup: %w", err)
		}
		return s, nil
	}}
}

// Manifests of the measures. Each app container ends at SIGTERM, so that
// removal measures the supervisors rather than the grace period.
const (
	podHead  = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s%d}\nspec:\n  containers:\n"
	idleApp  = "  - {name: app, image: %s, command: [sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]}\n"
	probeApp = "  - name: app\n    image: %s\n    command: [sh, -c, \"trap 'exit 0' TERM; sleep 3600 & wait\"]\n" +
		"    readinessProbe: {exec: {command: [\"true\"]}, periodSeconds: %d}\n"
	crashApp = "  - {name: app, image: %s, command: [sh, -c, \"sleep 2; exit 1\"]}\n"
)

// trial is a session of a peer with its manifest directory and event
// recorder.
type trial struct {
	p         *peer
	s         *session
	client    *containerd.Client
	rec       *recorder
	manifests string
}

// begin starts a fresh session of p on an empty manifest directory, and
// lets it settle for two seconds.
func begin(client *containerd.Client, p *peer, profiling bool) (*trial, error) {
	manifests, err := os.MkdirTemp("", "bench-manifests-")
	if err != nil {
		return nil, err
	}
	s, err := p.start(manifests, profiling)
	if err != nil {
		os.RemoveAll(manifests)
		return nil, err
	}
	time.Sleep(2 * time.Second)
	return &trial{p: p, s: s, client: client, rec: record(client, p.ns), manifests: manifests}, nil
}

// write writes n manifests of pods of the given app container, each
// whole, as configuration tools do: to a hidden temporary name, renamed
// into place.
func (r *trial) write(name, app string, n int) (time.Time, error) {
	start := time.Now()
	for i := 0; i < n; i++ {
		m := fmt.Sprintf(podHead, name, i) + app
		tmp := filepath.Join(r.manifests, fmt.Sprintf(".%s%d.yaml.tmp", name, i))
		if err := os.WriteFile(tmp, []byte(m), 0o644); err != nil {
			return start, err
		}
		if err := os.Rename(tmp, filepath.Join(r.manifests, fmt.Sprintf("%s%d.yaml", name, i))); err != nil {
			return start, err
		}
	}
	return start, nil
}

// waitStarted waits, up to five minutes, for n app containers to start,
// and returns when the last did.
func (r *trial) waitStarted(n int) (time.Time, error) {
	var last time.Time
	if !wait(5*time.Minute, func() bool {
		var ok bool
		last, ok = r.rec.started(n)
		return ok
	}) {
		return last, fmt.Errorf("%s: %d pods not started within 5 minutes", r.p.name, n)
	}
	return last, nil
}

// remove removes every manifest and returns how long until no task was
// left in the peer's namespace (up to two minutes).
func (r *trial) remove() (time.Duration, error) {
	files, _ := filepath.Glob(filepath.Join(r.manifests, "*.yaml"))
	start := time.Now()
	for _, f := range files {
		os.Remove(f)
	}
	ctx := namespaces.WithNamespace(context.Background(), r.p.ns)
	if !wait(2*time.Minute, func() bool {
		tasks, err := r.client.TaskService().List(ctx, nil)
		return err == nil && len(tasks.Tasks) == 0
	}) {
		return 0, fmt.Errorf("%s: tasks left 2 minutes after the manifests were removed", r.p.name)
	}
	return time.Since(start), nil
}

// end removes what is left and stops the session.
func (r *trial) end() {
	r.remove()
	if !r.p.keeps {
		ctx := namespaces.WithNamespace(context.Background(), r.p.ns)
		if !wait(2*time.Minute, func() bool {
			cs, err := r.client.Containers(ctx)
			return err == nil && len(cs) == 0
		}) {
			fmt.Fprintf(os.Stderr, "bench: %s did not delete every container within 2 minutes\n", r.p.name)
		}
	}
	r.rec.stop()
	r.s.stop()
	os.RemoveAll(r.manifests)
}

// importImages imports the pause and busybox images into namespace ns.
func importImages(client *containerd.Client, ns string) error {
	ctx := namespaces.WithNamespace(context.Background(), ns)
	bb, err := testenv.Busybox()
	if err != nil {
		return err
	}
	if _, err := bb.Import(ctx, client, testenv.Snapshotter); err != nil {
		return fmt.Errorf("import busybox into %s: %w", ns, err)
	}
	pb, err := image.PauseImage()
	if err != nil {
		return err
	}
	if _, err := pb.Import(ctx, client, testenv.Snapshotter); err != nil {
		return fmt.Errorf("import pause into %s: %w", ns, err)
	}
	return nil
}

// runPeer measures the kubelet and podsup side by side on a containerd of
// the benchmark's own and prints the medians of rounds rounds.
//
// Each measure starts a fresh supervisor on an empty manifest directory
// (the kubelet with a fresh root directory), lets it settle for 2 s, writes
// manifests, and ends by removing them, stopping the supervisor and
// removing what is left (the kubelet's sandboxes through the CRI). Starts
// and exits are the times containerd gives its task events, the same clock
// for both; "tasks gone" is polled every 20 ms. Pods are a busybox container
// (beside the pause sandbox) that ends at SIGTERM, so removal measures the
// supervisors and not the grace period; both get the same CNI bridge.
//
// The CPU measure's load is pr; profs are podsup's profiles to save in the
// first round.
func runPeer(rounds int, batches []int, window time.Duration, pr probing, profs profiles) error {
	podsupBin, err := buildPodsup()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(podsupBin))
	kubeletBin, err := kube.Kubelet(func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
	if err != nil {
		return err
	}
	version, _ := exec.Command(kubeletBin, "--version").Output()

	dir, err := os.MkdirTemp("", "bench-peer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// One network for both peers, of the benchmark's own so it disturbs
	// nothing else: the CRI plugin reads it from its conf_dir, podsup from
	// --cni-conf-dir.
	bridge := fmt.Sprintf("psp%06x", rand.IntN(1<<24))
	defer exec.Command("ip", "link", "del", bridge).Run()
	subnet := fmt.Sprintf("10.124.%d.0/24", rand.IntN(250)+1)
	defer removeMasquerade(subnet)
	cniDir := filepath.Join(dir, "cni")
	os.MkdirAll(cniDir, 0o755)
	conflist := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "bench", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}`, bridge, subnet, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(cniDir, "10-bench.conflist"), []byte(conflist), 0o644); err != nil {
		return err
	}
	pause, err := image.PauseImage()
	if err != nil {
		return err
	}
	chains := iptablesChains()
	defer removeKubeletChains(chains)
	ctrd, err := startContainerd(cniDir, pause.Ref)
	if err != nil {
		return err
	}
	defer ctrd.stop()
	client, err := containerd.New(ctrd.address)
	if err != nil {
		return err
	}
	defer client.Close()
	v, err := client.Version(context.Background())
	if err != nil {
		return err
	}
	podsupNS := fmt.Sprintf("podsup-bench-%d", time.Now().UnixNano())
	// The shim's runc root of podsup's containers, which it leaves.
	defer os.Remove(filepath.Join("/run/containerd/runc", podsupNS))
	for _, ns := range []string{"k8s.io", podsupNS} {
		if err := importImages(client, ns); err != nil {
			return err
		}
	}
	// Whatever a failed measure left running ends with the namespaces, so
	// that no shim outlives the daemon.
	defer func() {
		for _, ns := range []string{"k8s.io", podsupNS} {
			if err := testenv.Purge(client, ns); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		}
	}()
	// The floor with the pod network sets it up through podsup's cni
	// package (libcni, a network namespace bind-mounted per pod) from the
	// same conflist.
	floorNet, err := cni.New(cni.WithConfDir(cniDir), cni.WithRootDir(filepath.Join(dir, "floor")),
		cni.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return fmt.Errorf("floor network: %w", err)
	}
	peers := []*peer{kubeletPeer(kubeletBin, ctrd.address), podsupPeer(podsupBin, ctrd.address, podsupNS, cniDir)}
	fmt.Printf("%s, containerd %s (the benchmark's own, at %s), %d rounds\n", strings.TrimSpace(string(version)), v.Version, ctrd.address, rounds)

	t := newTable()
	for round := 0; round < rounds; round++ {
		for _, p := range peers {
			var pp profiles
			if round == 0 && p.name == "podsup" {
				pp = profs
			}
			if err := measureRound(client, p, t, batches, window, pr, pp); err != nil {
				return err
			}
		}
		for _, n := range batches {
			fl, err := measureFloor(client, n, nil)
			if err != nil {
				return fmt.Errorf("floor: %w", err)
			}
			t.add(startName(n), "floor", fl.Seconds())
			if fl, err = measureFloor(client, n, floorNet); err != nil {
				return fmt.Errorf("floor with the pod network: %w", err)
			}
			t.add(startName(n), "floor+net", fl.Seconds())
		}
		fmt.Fprintf(os.Stderr, "round %d done\n", round+1)
	}
	t.print()
	return nil
}

func startName(n int) string {
	if n == 1 {
		return "manifest written → pause and container started, 1 pod"
	}
	return fmt.Sprintf("%d manifests at once → all started", n)
}

func pods(n int) string {
	if n == 1 {
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", n)
}

// measureRound takes one round of every measure of p, saving profs.
func measureRound(client *containerd.Client, p *peer, t *table, batches []int, window time.Duration, pr probing, profs profiles) error {
	largest := slices.Index(batches, slices.Max(batches))
	for i, n := range batches {
		var pp profiles
		if i == largest {
			pp = profiles{startCPU: profs.startCPU, startAllocs: profs.startAllocs}
		}
		if err := measureStart(client, p, t, n, pp); err != nil {
			return err
		}
	}
	if err := measureCPU(client, p, t, window, pr, profiles{probeCPU: profs.probeCPU, probeAllocs: profs.probeAllocs}); err != nil {
		return err
	}
	return measureCrash(client, p, t)
}

// measureStart writes n manifests for a fresh session of p and takes the
// time until every container started, the memory with them running and
// the time until their tasks are gone once the manifests are removed. It
// saves profs' profiles of the start.
func measureStart(client *containerd.Client, p *peer, t *table, n int, profs profiles) error {
	r, err := begin(client, p, profs.start())
	if err != nil {
		return err
	}
	defer r.end()
	var waitCPU func()
	if profs.startCPU != "" {
		// Under way before the manifests are written (a CPU profile
		// starts when its request arrives, and says nothing until it
		// ends), and waited for before they are removed, so that the
		// removal is not in it.
		waitCPU = fetchAsync(fmt.Sprintf("%s/profile?seconds=%d", r.s.pprof, startProfileSeconds), profs.startCPU)
		defer waitCPU()
		time.Sleep(200 * time.Millisecond)
	}
	start, err := r.write("pod", fmt.Sprintf(idleApp, testenv.BusyboxRef), n)
	if err != nil {
		return err
	}
	last, err := r.waitStarted(n)
	if err != nil {
		return err
	}
	t.add(startName(n), p.name, last.Sub(start).Seconds())
	time.Sleep(2 * time.Second) // let it settle before reading its memory
	t.add(fmt.Sprintf("RSS with %s (MiB)", pods(n)), p.name, float64(rssKiB(r.s.pid))/1024)
	t.add(fmt.Sprintf("anonymous RSS (heap, stacks) with %s (MiB)", pods(n)), p.name, float64(anonKiB(r.s.pid))/1024)
	// Cumulative, since the session is fresh: podsup's start-up and the
	// batch's. Fetched after the memory is read, as serving it allocates.
	if profs.startAllocs != "" {
		collect(r.s.pprof)
	}
	if err := fetchProfile(r.s.pprof+"/allocs", profs.startAllocs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	if waitCPU != nil {
		waitCPU()
	}
	took, err := r.remove()
	if err != nil {
		return err
	}
	t.add(fmt.Sprintf("%s removed → tasks gone", pods(n)), p.name, took.Seconds())
	return nil
}

// probing is the CPU measure's load: pods pods, each with an exec
// readiness probe every period seconds.
type probing struct{ pods, period int }

// measureCPU runs pr's pods and takes the peer's own CPU over window,
// saving profs' profiles over it.
func measureCPU(client *containerd.Client, p *peer, t *table, window time.Duration, pr probing, profs profiles) error {
	n := pr.pods
	r, err := begin(client, p, profs.probe())
	if err != nil {
		return err
	}
	defer r.end()
	if _, err := r.write("probed", fmt.Sprintf(probeApp, testenv.BusyboxRef, pr.period), n); err != nil {
		return err
	}
	if _, err := r.waitStarted(n); err != nil {
		return err
	}
	// Probes under way (each begins within a period), start-up work done.
	time.Sleep(max(10*time.Second, 2*time.Duration(pr.period)*time.Second))
	if profs.probeAllocs != "" {
		collect(r.s.pprof)
	}
	before, err := cpuTicks(r.s.pid)
	if err != nil {
		return err
	}
	execs := r.rec.execCount()
	start := time.Now()
	if profs.probe() {
		// The allocations as a delta over the window: net/http/pprof
		// subtracts the profile at its start from the one at its end.
		secs := max(1, int(window.Seconds()))
		waitCPU := fetchAsync(fmt.Sprintf("%s/profile?seconds=%d", r.s.pprof, secs), profs.probeCPU)
		defer waitCPU()
		waitAllocs := fetchAsync(fmt.Sprintf("%s/allocs?seconds=%d", r.s.pprof, secs), profs.probeAllocs)
		defer waitAllocs()
		if profs.probeAllocs != "" {
			// Just before the delta's second profile is taken.
			gc := time.AfterFunc(time.Duration(secs)*time.Second-250*time.Millisecond, func() { collect(r.s.pprof) })
			defer gc.Stop()
		}
	}
	time.Sleep(window)
	after, err := cpuTicks(r.s.pid)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	const clkTck = 100 // USER_HZ on Linux
	busy := time.Duration(after-before) * time.Second / clkTck
	t.add(fmt.Sprintf("own CPU over %s, %s with %d s exec probes (%% of a core)", window, pods(n), pr.period), p.name, 100*busy.Seconds()/elapsed.Seconds())
	probes := r.rec.execCount() - execs
	t.add(fmt.Sprintf("exec probes run per second (%g if none is late)", float64(n)/float64(pr.period)), p.name, float64(probes)/elapsed.Seconds())
	if probes > 0 {
		t.add("own CPU per exec probe (ms)", p.name, 1000*busy.Seconds()/float64(probes))
	}
	return nil
}

// measureCrash runs one pod whose container exits after 2 s and takes the
// time from its exit to its next start.
func measureCrash(client *containerd.Client, p *peer, t *table) error {
	r, err := begin(client, p, false)
	if err != nil {
		return err
	}
	defer r.end()
	if _, err := r.write("crash", fmt.Sprintf(crashApp, testenv.BusyboxRef), 1); err != nil {
		return err
	}
	var exited, next time.Time
	if !wait(3*time.Minute, func() bool {
		var ok bool
		exited, next, ok = r.rec.restart()
		return ok
	}) {
		return fmt.Errorf("%s: a crashed container not started again within 3 minutes", p.name)
	}
	t.add("container crash → next start", p.name, next.Sub(exited).Seconds())
	return nil
}

// removeMasquerade removes the bridge plugin's masquerade rules and chains
// of the bench's subnet that a teardown cut short left behind.
func removeMasquerade(subnet string) {
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		return
	}
	prefix := strings.TrimSuffix(subnet, "0/24")
	chains := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "-A" || !strings.Contains(line, prefix) || !strings.Contains(line, `name: \"bench\"`) {
			continue
		}
		if f[1] == "POSTROUTING" {
			chain := f[len(f)-1]
			_, rest, _ := strings.Cut(line, `--comment "`)
			comment, _, _ := strings.Cut(rest, `" -j `)
			exec.Command("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", f[3], "-m", "comment", "--comment",
				strings.ReplaceAll(comment, `\"`, `"`), "-j", chain).Run()
			chains[chain] = true
		} else {
			chains[f[1]] = true
		}
	}
	for c := range chains {
		exec.Command("iptables", "-w", "-t", "nat", "-F", c).Run()
		exec.Command("iptables", "-w", "-t", "nat", "-X", c).Run()
	}
}
