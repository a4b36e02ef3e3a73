// Command bench measures how long podsup takes from writing manifests to
// every container running, for 1 and for 50 pods, against the floor: the same
// containers (a pause sandbox and one app container per pod, the same images,
// snapshotter and shim grouping, with output to FIFOs) created directly with
// the containerd client, all pods in parallel. It prints both, their ratio,
// and podsup's resident memory with the pods running. Run as root with
// containerd running:
//
//	go run ./hack/bench [-pods 1,50] [-rounds 3]
//
// With -probes it instead measures podsup's own CPU use over a minute with
// 100 containers each probed every second: 50 pods of two containers, one
// with an exec probe and one with an HTTP probe to its pod IP.
//
// With -peer kubelet it runs the same workload through podsup and through
// the kubelet of internal/testenv/kube's release (standalone, static pods),
// on a containerd 2 of its own whose CRI plugin the kubelet uses, and prints
// both, their ratio and the floor (see peer.go):
//
//	go run ./hack/bench -peer kubelet [-pods 1,20,50] [-rounds 3] [-window 30s] [-probed 20] [-period 1] [-profiles DIR]
//
// Its CPU measure runs -probed pods, each with an exec readiness probe every
// -period seconds; -pods 100 -probed 100 -period 10 gives the resident
// memory with 100 pods and the CPU with 100 exec-probed containers. With
// -profiles DIR it saves, in the first round, four profiles of podsup into
// DIR: probe-cpu.pprof and probe-allocs.pprof over the CPU measure's window
// (the allocations as a delta over that window), and start-cpu.pprof and
// start-allocs.pprof of the start of the largest batch (the CPU from just
// before the manifests are written, the allocations cumulative since podsup
// started, fetched once the batch runs). The profilers' own allocations
// (the CPU profile's buffer, the delta's first profile) fall in those
// windows: go tool pprof -ignore='runtime/pprof|net/http/pprof' leaves them
// out.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podsup/podsup/cni"
	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/internal/testenv"
	"github.com/podsup/podsup/runtime"
	"github.com/podsup/podsup/volume"
)

func main() {
	podsFlag := flag.String("pods", "1,50", "pod counts to measure")
	rounds := flag.Int("rounds", 3, "measurements per pod count; the median is printed")
	probes := flag.Bool("probes", false, "measure podsup's CPU with 100 containers probed every second instead")
	window := flag.Duration("window", time.Minute, "with -probes or -peer: how long to measure CPU")
	profile := flag.String("cpuprofile", "", "with -probes: save a CPU profile of podsup to this file; with -peer, deprecated for -profiles: saves only its probe-cpu.pprof, at this path")
	kinds := flag.String("kinds", "exec,http", "with -probes: the probes of each pod's two containers")
	peerFlag := flag.String("peer", "", "kubelet: measure podsup beside the kubelet instead (-pods defaults to 1,20,50, -window to 30s)")
	probed := flag.Int("probed", 20, "with -peer: how many exec-probed pods the CPU measure runs")
	period := flag.Int("period", 1, "with -peer: the CPU measure's exec readiness probe period, in seconds")
	profDir := flag.String("profiles", "", "with -peer: save podsup's CPU and allocation profiles of the first round's CPU measure and of its largest batch's start into this directory "+
		"(podsup then runs with --profiling in those two trials, whose start, memory, removal and CPU figures still count though profiling may shift them a little)")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	switch {
	case *peerFlag != "":
		if *peerFlag != "kubelet" {
			err = fmt.Errorf("-peer %q: the only peer is kubelet", *peerFlag)
			break
		}
		if !set["pods"] {
			*podsFlag = "1,20,50"
		}
		if !set["window"] {
			*window = 30 * time.Second
		}
		if *probed < 1 || *period < 1 {
			err = fmt.Errorf("-probed %d -period %d: want at least one pod and one second", *probed, *period)
			break
		}
		var profs profiles
		if profs, err = peerProfiles(*profDir, *profile); err != nil {
			break
		}
		var batches []int
		if batches, err = podCounts(*podsFlag); err == nil {
			err = runPeer(*rounds, batches, *window, probing{pods: *probed, period: *period}, profs)
		}
	case *profDir != "":
		err = fmt.Errorf("-profiles: only with -peer")
	case *probes:
		err = runProbes(*window, *profile, strings.Split(*kinds, ","))
	default:
		err = run(*podsFlag, *rounds)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(podsFlag string, rounds int) error {
	bin, err := buildPodsup()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(bin))
	client, err := containerd.New(testenv.Address())
	if err != nil {
		return err
	}
	defer client.Close()
	v, err := client.Version(context.Background())
	if err != nil {
		return fmt.Errorf("containerd at %s: %w", testenv.Address(), err)
	}
	fmt.Printf("containerd %s at %s\n", v.Version, testenv.Address())
	counts, err := podCounts(podsFlag)
	if err != nil {
		return err
	}
	fmt.Printf("%-6s %-12s %-12s %-7s %s\n", "pods", "floor", "podsup", "ratio", "podsup RSS")
	for _, n := range counts {
		var floors, ups []time.Duration
		var rss int64
		for r := 0; r < rounds; r++ {
			fl, err := measureFloor(client, n, nil)
			if err != nil {
				return fmt.Errorf("floor: %w", err)
			}
			up, kb, err := measurePodsup(client, bin, n)
			if err != nil {
				return fmt.Errorf("podsup: %w", err)
			}
			floors, ups, rss = append(floors, fl), append(ups, up), max(rss, kb)
		}
		fl, up := median(floors), median(ups)
		fmt.Printf("%-6d %-12s %-12s %-7.2f %.1f MiB\n", n, fl.Round(time.Millisecond), up.Round(time.Millisecond), float64(up)/float64(fl), float64(rss)/1024)
	}
	return nil
}

// podCounts parses -pods.
func podCounts(podsFlag string) ([]int, error) {
	var counts []int
	for _, f := range strings.Split(podsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-pods %q: want counts such as 1,50", podsFlag)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func buildPodsup() (string, error) {
	dir, err := os.MkdirTemp("", "podsup-bench-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "podsup")
	// Built as podsup is shipped: static and stripped.
	cmd := exec.Command("go", "build", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build podsup: %v\n%s", err, out)
	}
	return bin, nil
}

// namespace makes a fresh containerd namespace with the images imported.
func namespace(client *containerd.Client) (context.Context, string, containerd.Image, containerd.Image, error) {
	ns := fmt.Sprintf("podsup-bench-%d", time.Now().UnixNano())
	ctx := namespaces.WithNamespace(context.Background(), ns)
	bb, err := testenv.Busybox()
	if err != nil {
		return nil, "", nil, nil, err
	}
	busybox, err := bb.Import(ctx, client, testenv.Snapshotter)
	if err != nil {
		return nil, "", nil, nil, err
	}
	pb, err := image.PauseImage()
	if err != nil {
		return nil, "", nil, nil, err
	}
	pause, err := pb.Import(ctx, client, testenv.Snapshotter)
	if err != nil {
		return nil, "", nil, nil, err
	}
	return ctx, ns, pause, busybox, nil
}

// measureFloor starts n pods directly through the containerd client,
// each in a network namespace of its own set up through net while its
// pause task is created (as podsup does); with a nil net, in the pause container's own namespace,
// with no network.
func measureFloor(client *containerd.Client, n int, net *cni.Manager) (time.Duration, error) {
	ctx, ns, pause, busybox, err := namespace(client)
	if err != nil {
		return 0, err
	}
	// The shim's runc root of the namespace, which it leaves; removed
	// after the purge.
	defer os.Remove(filepath.Join("/run/containerd/runc", ns))
	defer testenv.Purge(client, ns)
	fifos, err := os.MkdirTemp("", "bench-fifo-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(fifos)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = floorPod(ctx, client, pause, busybox, fmt.Sprintf("pod%d", i), fifos, floorNetwork(ctx, net, ns))
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if net != nil {
		for i := 0; i < n; i++ {
			if err := net.TearDown(ctx, floorSandbox(ns, fmt.Sprintf("pod%d", i))); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return took, nil
}

// floorSandbox is the CNI sandbox ID of a floor pod: unique across rounds,
// which reuse pod names in fresh containerd namespaces.
func floorSandbox(ns, name string) string { return ns + "-" + name }

// floorNetwork returns what starts setting up a floor pod's network and
// gives the path of its namespace as soon as it exists, with a wait for
// the setup's end: the pause task is created while the plugins run, as
// podsup does it. Nil without net.
func floorNetwork(ctx context.Context, net *cni.Manager, ns string) func(name string) (string, func() error, error) {
	if net == nil {
		return nil
	}
	return func(name string) (string, func() error, error) {
		made := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			_, err := net.SetUp(ctx, cni.PodNetwork{Namespace: "bench", Name: name, UID: ns + name, SandboxID: floorSandbox(ns, name),
				Made: func(netns, _ string) { made <- netns }})
			done <- err
		}()
		select {
		case netns := <-made:
			return netns, func() error { return <-done }, nil
		case err := <-done:
			return "", nil, err
		}
	}
}

func floorPod(ctx context.Context, client *containerd.Client, pause, busybox containerd.Image, name, fifos string, network func(string) (string, func() error, error)) error {
	sbID := name + "_pause"
	specOpts := []oci.SpecOpts{oci.WithImageConfig(pause), oci.WithRootFSReadonly(), oci.WithHostname(name),
		oci.WithAnnotations(map[string]string{"io.containerd.runc.v2.group": sbID})}
	awaitNetwork := func() error { return nil }
	if network != nil {
		netns, wait, err := network(name)
		if err != nil {
			return fmt.Errorf("pod network: %w", err)
		}
		// Waited for on every return, so that no setup outlives the pod.
		var once sync.Once
		var werr error
		awaitNetwork = func() error {
			once.Do(func() { werr = wait() })
			return werr
		}
		defer awaitNetwork()
		specOpts = append(specOpts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns}))
	}
	sb, err := client.NewContainer(ctx, sbID, containerd.WithImage(pause), containerd.WithNewSnapshotView(sbID, pause),
		containerd.WithNewSpec(specOpts...))
	if err != nil {
		return err
	}
	sbTask, err := sb.NewTask(ctx, cio.NullIO)
	if err != nil {
		return err
	}
	if err := awaitNetwork(); err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	if err := sbTask.Start(ctx); err != nil {
		return err
	}
	proc := func(ns string) string { return fmt.Sprintf("/proc/%d/ns/%s", sbTask.Pid(), ns) }
	id := name + "_app"
	c, err := client.NewContainer(ctx, id, containerd.WithImage(busybox), containerd.WithNewSnapshot(id, busybox),
		containerd.WithNewSpec(oci.WithImageConfig(busybox), oci.WithProcessArgs("sleep", "3600"),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: proc("net")}),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: proc("ipc")}),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: proc("uts")}),
			oci.WithAnnotations(map[string]string{"io.containerd.runc.v2.group": sbID})))
	if err != nil {
		return err
	}
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, io.Discard, io.Discard), cio.WithFIFODir(fifos)))
	if err != nil {
		return err
	}
	return task.Start(ctx)
}

// measurePodsup writes n manifests into the directory of a running podsup
// and returns the time until the last container started, and podsup's RSS
// in KiB with them running.
func measurePodsup(client *containerd.Client, bin string, n int) (time.Duration, int64, error) {
	ctx, ns, _, _, err := namespace(client)
	if err != nil {
		return 0, 0, err
	}
	defer testenv.Purge(client, ns)
	dir, err := os.MkdirTemp("", "bench-podsup-")
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		// What podsup mounted there: pods' /dev/shm, the netns directory.
		if err := volume.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}()
	manifests := filepath.Join(dir, "manifests")
	os.MkdirAll(manifests, 0o755)
	ro := freeAddr()
	cmd := exec.Command(bin, "run", "--manifests", manifests, "--root-dir", filepath.Join(dir, "root"), "--log-dir", filepath.Join(dir, "logs"),
		"--containerd-address", testenv.Address(), "--containerd-namespace", ns, "--node-name", "bench", "--read-only-address", ro, "--healthz-address", "")
	logFile, _ := os.Create(filepath.Join(dir, "podsup.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	// Runs first: podsup removes the pods itself, networks included (a
	// purge of the namespace afterwards would leave their namespaces,
	// veths and masquerade rules behind).
	defer removePods(ctx, client, manifests)
	if err := waitHTTP("http://" + ro + "/pods"); err != nil {
		return 0, 0, err
	}
	// Write each manifest whole, as configuration tools do: to a temporary
	// name and renamed into place.
	start := time.Now()
	for i := 0; i < n; i++ {
		m := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: pod%d}\nspec:\n  containers:\n  - {name: app, image: %s, command: [sleep, \"3600\"]}\n", i, testenv.BusyboxRef)
		tmp := filepath.Join(manifests, fmt.Sprintf(".pod%d.yaml.tmp", i))
		if err := os.WriteFile(tmp, []byte(m), 0o644); err != nil {
			return 0, 0, err
		}
		if err := os.Rename(tmp, filepath.Join(manifests, fmt.Sprintf("pod%d.yaml", i))); err != nil {
			return 0, 0, err
		}
	}
	var last time.Time
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d pods not running within 5 minutes; see %s", n, logFile.Name())
		}
		done, latest, err := started(ctx, client, n)
		if err != nil {
			return 0, 0, err
		}
		if done {
			last = latest
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let it settle before reading its memory
	return last.Sub(start), rssKiB(cmd.Process.Pid), nil
}

// removePods removes every manifest and waits, up to two minutes, until
// podsup has removed every container.
func removePods(ctx context.Context, client *containerd.Client, manifests string) {
	files, _ := filepath.Glob(filepath.Join(manifests, "*.yaml"))
	for _, f := range files {
		os.Remove(f)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cs, err := client.Containers(ctx); err == nil && len(cs) == 0 {
			return
		}
	}
	fmt.Fprintln(os.Stderr, "bench: podsup did not remove every pod within 2 minutes")
}

// started reports whether n app containers run, and the latest start.
func started(ctx context.Context, client *containerd.Client, n int) (bool, time.Time, error) {
	cs, err := client.Containers(ctx, fmt.Sprintf("labels.%q==%q", runtime.LabelKind, "container"))
	if err != nil {
		return false, time.Time{}, err
	}
	var latest time.Time
	count := 0
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if err != nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, labels[runtime.LabelStartedAt])
		if err != nil {
			continue
		}
		count++
		if t.After(latest) {
			latest = t
		}
	}
	return count >= n, latest, nil
}

func rssKiB(pid int) int64 { return statusKiB(pid, "VmRSS:") }

// anonKiB is the process's anonymous resident memory: its heap, stacks and
// other private pages, which only it uses and the kernel can only swap. The
// rest of its RSS is pages of its executable, shared with the page cache.
func anonKiB(pid int) int64 { return statusKiB(pid, "RssAnon:") }

// statusKiB reads one "Field:  N kB" line of /proc/<pid>/status.
func statusKiB(pid int, field string) int64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return kb
		}
	}
	return 0
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(url string) error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return nil
		}
	}
	return fmt.Errorf("%s did not answer", url)
}

func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
