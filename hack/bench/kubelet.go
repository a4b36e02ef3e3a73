package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podsup/podsup/volume"
)

// kubeletConfig runs the kubelet standalone (no --kubeconfig) on static
// pods only, on this cgroup v1 host without systemd or swap: cgroupfs,
// failCgroupV1 off (a current kubelet refuses cgroup v1 otherwise), no QoS
// cgroups or node allocatable (nothing to enforce it for), and no image
// garbage collection or disk eviction, which could remove the imported
// images or the pods mid-measure. Its servers listen on loopback ports of
// the benchmark's choosing; its logs and plugin directories are its own.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %[1]s
containerRuntimeEndpoint: unix://%[2]s
imageServiceEndpoint: unix://%[2]s
podLogsDir: %[3]s/logs
volumePluginDir: %[3]s/volume-plugins
address: 127.0.0.1
port: %[4]d
readOnlyPort: %[5]d
healthzBindAddress: 127.0.0.1
healthzPort: %[6]d
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi"}
serializeImagePulls: false
`

// kubeletPeer runs the kubelet on the bench containerd's CRI, whose
// namespace is k8s.io.
func kubeletPeer(bin, address string) *peer {
	return &peer{name: "kubelet", ns: "k8s.io", keeps: true, start: func(manifests string, _ bool) (*session, error) {
		return startKubelet(bin, address, manifests)
	}}
}

func startKubelet(bin, address, manifests string) (*session, error) {
	dir, err := os.MkdirTemp("", "bench-kubelet-")
	if err != nil {
		return nil, err
	}
	healthz := freePort()
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(kubeletConfig, manifests, address, dir, freePort(), freePort(), healthz)), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "kubelet.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--config", config, "--root-dir", filepath.Join(dir, "root"), "--hostname-override", "bench")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kubelet: %w", err)
	}
	s := &session{pid: cmd.Process.Pid, stop: func() {
		// A kubelet stopped while it tears a pod's network down has its
		// CNI call cancelled half-way, leaving masquerade rules behind.
		if !wait(time.Minute, func() bool { n, err := readySandboxes(address); return err == nil && n == 0 }) {
			fmt.Fprintln(os.Stderr, "bench: the kubelet's sandboxes still ready a minute after their pods were removed")
		}
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if err := removeSandboxes(address); err != nil {
			fmt.Fprintln(os.Stderr, "bench: remove the kubelet's pods:", err)
		}
		if os.Getenv("BENCH_KEEP") == "" {
			if err := volume.RemoveAll(dir); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		}
	}}
	if err := waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz)); err != nil {
		s.stop()
		return nil, fmt.Errorf("kubelet: %w; see %s", err, logFile.Name())
	}
	return s, nil
}

// readySandboxes counts the CRI's ready sandboxes: those whose network
// is not torn down yet.
func readySandboxes(address string) (int, error) {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, fmt.Errorf("connect to the CRI at %s: %w", address, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := runtimeapi.NewRuntimeServiceClient(conn).ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}},
	})
	if err != nil {
		return 0, fmt.Errorf("list pod sandboxes: %w", err)
	}
	return len(list.Items), nil
}

// removeSandboxes stops and removes every pod sandbox of the CRI at
// address, with its containers and network, as the kubelet would have
// once its garbage collector came round.
func removeSandboxes(address string) error {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to the CRI at %s: %w", address, err)
	}
	defer conn.Close()
	cri := runtimeapi.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := cri.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", err)
	}
	var errs []error
	for _, sb := range list.Items {
		// A kubelet stopped while it tore a pod's network down leaves the
		// CRI finishing that teardown; a second one at the same time fails
		// (the bridge plugin finds its chain gone). Try again.
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			if _, err = cri.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err == nil {
				_, err = cri.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
			}
			if err == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove pod sandbox %s: %w", sb.Id, err))
		}
	}
	return errors.Join(errs...)
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// kubeletChains are the iptables chains a kubelet makes at start-up, for
// IPv4 and IPv6, and the built-in chains that jump to them.
var kubeletChains = []struct {
	table, chain string
	from         []string
}{
	{"mangle", "KUBE-IPTABLES-HINT", nil},
	{"mangle", "KUBE-KUBELET-CANARY", nil},
	{"nat", "KUBE-KUBELET-CANARY", nil},
	{"filter", "KUBE-KUBELET-CANARY", nil},
	{"filter", "KUBE-FIREWALL", []string{"INPUT", "OUTPUT"}},
}

var iptablesCommands = []string{"iptables", "ip6tables"}

// iptablesChains says which of kubeletChains exist now.
func iptablesChains() map[string]bool {
	have := map[string]bool{}
	for _, cmd := range iptablesCommands {
		for _, c := range kubeletChains {
			if exec.Command(cmd, "-w", "-t", c.table, "-S", c.chain).Run() == nil {
				have[cmd+" "+c.table+" "+c.chain] = true
			}
		}
	}
	return have
}

// removeKubeletChains removes the kubelet's chains that were not there
// before the benchmark started.
func removeKubeletChains(before map[string]bool) {
	for key := range iptablesChains() {
		if before[key] {
			continue
		}
		f := strings.Fields(key)
		for _, c := range kubeletChains {
			if c.table != f[1] || c.chain != f[2] {
				continue
			}
			for _, from := range c.from {
				exec.Command(f[0], "-w", "-t", c.table, "-D", from, "-j", c.chain).Run()
			}
		}
		exec.Command(f[0], "-w", "-t", f[1], "-F", f[2]).Run()
		if out, err := exec.Command(f[0], "-w", "-t", f[1], "-X", f[2]).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: remove the kubelet's chain %s: %v: %s", key, err, out)
		}
	}
}
