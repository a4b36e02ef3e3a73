package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/podsup/podsup/internal/testenv"
)

const probedPodHead = `apiVersion: v1
kind: Pod
metadata: {name: probed%d}
spec:
  terminationGracePeriodSeconds: 1
  containers:
`

// probedContainers are a container with an exec probe and one with an HTTP
// probe, by kind.
var probedContainers = map[string]string{
	"none": `  - name: idle%d
    image: %s
    command: [sleep, "3600"]
`,
	"exec": `  - name: exec%d
    image: %s
    command: [sleep, "3600"]
    readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
`,
	"http": `  - name: http%d
    image: %s
    command: [sh, -c, 'mkdir -p /tmp/www && echo ok > /tmp/www/index.html && exec httpd -f -p 808%[1]d -h /tmp/www']
    readinessProbe: {httpGet: {path: /, port: 808%[1]d}, periodSeconds: 1}
`,
}

// runProbes measures podsup's CPU with 100 containers probed every second.
func runProbes(window time.Duration, profile string, kinds []string) error {
	for _, k := range kinds {
		if probedContainers[k] == "" || len(kinds) != 2 {
			return fmt.Errorf("-kinds: want two of exec, http and none, such as exec,http")
		}
	}
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
	ctx, ns, _, _, err := namespace(client)
	if err != nil {
		return err
	}
	defer testenv.Purge(client, ns)
	dir, err := os.MkdirTemp("", "bench-probes-")
	if err != nil {
		return err
	}
	root := filepath.Join(dir, "root")
	defer func() {
		for _, sub := range []string{"pods/*/shm", "netns/*", "netns"} {
			matches, _ := filepath.Glob(filepath.Join(root, sub))
			for _, m := range matches {
				syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
		os.RemoveAll(dir)
	}()
	// A network of the benchmark's own, so it disturbs nothing else.
	bridge := fmt.Sprintf("psb%06x", rand.IntN(1<<24))
	defer exec.Command("ip", "link", "del", bridge).Run()
	conf := filepath.Join(dir, "cni")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "10-bench.conflist"), []byte(fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "bench", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.125.%d.0/24"}]], "dataDir": %q}}]}`, bridge, rand.IntN(250)+1, filepath.Join(dir, "ipam"))), 0o644)
	manifests := filepath.Join(dir, "manifests")
	os.MkdirAll(manifests, 0o755)
	for i := 0; i < 50; i++ {
		m := fmt.Sprintf(probedPodHead, i)
		for j, kind := range kinds {
			m += fmt.Sprintf(probedContainers[kind], j, testenv.BusyboxRef)
		}
		os.WriteFile(filepath.Join(manifests, fmt.Sprintf("p%d.yaml", i)), []byte(m), 0o644)
	}
	ro := freeAddr()
	cmd := exec.Command(bin, "run", "--manifests", manifests, "--root-dir", root, "--log-dir", filepath.Join(dir, "logs"),
		"--containerd-address", testenv.Address(), "--containerd-namespace", ns, "--node-name", "bench", "--read-only-address", ro, "--healthz-address", "", "--cni-conf-dir", conf, "--profiling")
	logFile, _ := os.Create(filepath.Join(dir, "podsup.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	if err := waitHTTP("http://" + ro + "/pods"); err != nil {
		return err
	}
	if err := waitAllReady(ctx, ro, 100, 5*time.Minute); err != nil {
		return err
	}
	time.Sleep(5 * time.Second)
	before, err := cpuTicks(cmd.Process.Pid)
	if err != nil {
		return err
	}
	ctrdBefore := othersTicks()
	start := time.Now()
	if profile != "" {
		go func() {
			if err := fetchProfile("http://"+ro+"/debug/pprof/profile?seconds=30", profile); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		}()
	}
	time.Sleep(window)
	after, _ := cpuTicks(cmd.Process.Pid)
	elapsed := time.Since(start)
	ctrdBusy := time.Duration(othersTicks()-ctrdBefore) * time.Second / 100
	const clkTck = 100 // USER_HZ on Linux
	busy := time.Duration(after-before) * time.Second / clkTck
	logData, _ := os.ReadFile(logFile.Name())
	failed := strings.Count(string(logData), "reason=Unhealthy")
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("100 containers probed every second (%s) for %s: podsup used %s of CPU, %.1f%% of one core; RSS %.1f MiB; %d failed probes; load %s; containerd and shims used %.1f%% of one core\n",
		strings.Join(kinds, "+"), elapsed.Round(time.Second), busy, 100*busy.Seconds()/elapsed.Seconds(), float64(rssKiB(cmd.Process.Pid))/1024,
		failed, strings.Join(strings.Fields(string(load))[:3], " "), 100*ctrdBusy.Seconds()/elapsed.Seconds())
	return nil
}

// cpuTicks is a process's user and system time in clock ticks.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime, nil
}

// waitAllReady waits until n containers are ready.
func waitAllReady(_ context.Context, ro string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + ro + "/pods")
		if err == nil {
			var list struct {
				Items []struct {
					Status struct {
						ContainerStatuses []struct {
							Ready bool `json:"ready"`
						} `json:"containerStatuses"`
					} `json:"status"`
				} `json:"items"`
			}
			err = jsonDecode(resp, &list)
			ready := 0
			for _, p := range list.Items {
				for _, c := range p.Status.ContainerStatuses {
					if c.Ready {
						ready++
					}
				}
			}
			if ready >= n {
				return nil
			}
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("%d containers not ready within %s", n, timeout)
}

// othersTicks is the CPU time, in clock ticks, of containerd and its shims
// (their children, runc among them, counted once they exit).
func othersTicks() int64 {
	entries, _ := os.ReadDir("/proc")
	var total int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		name := strings.TrimSpace(string(comm))
		if name != "containerd" && !strings.HasPrefix(name, "containerd-shim") {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			v, _ := strconv.ParseInt(f[i], 10, 64)
			total += v
		}
	}
	return total
}
