//go:build integration

package network

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// get fetches url, trying again until it answers, and returns the body.
func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var body string
	harness.WaitFor(t, "GET "+url+" answers", func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(data)
		return true
	})
	return body
}

const serverPod = `apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: podsup.test/busybox:1
    command: [sh, -c, 'mkdir -p /tmp/www && echo "hello from $(hostname)" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
    ports: [{containerPort: 8080, hostPort: %d}]
`

// TestPodNetwork: two pods reach each other by IP, the host reaches a pod,
// a hostPort answers on the host's addresses, hostNetwork pods skip CNI, and
// removing the pods releases everything.
func TestPodNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := harness.NewNetwork(t, e.Env, 24)
	hostPort := testenv.FreePort(t)
	e.Write("server.yaml", fmt.Sprintf(serverPod, "server", hostPort))
	e.Write("host.yaml", harness.SleeperPod("host", harness.IdleCmd)+"  hostNetwork: true\n")
	e.Start(n.Args()...)
	e.WaitConverged(map[string]bool{"server": true, "host": true})
	server := e.Pod("server")
	if !strings.HasPrefix(server.Status.PodIP, strings.TrimSuffix(n.Subnet, "0/24")) {
		t.Fatalf("server IP %q is not in %s", server.Status.PodIP, n.Subnet)
	}
	if got := get(t, "http://"+server.Status.PodIP+":8080/"); got != "hello from server-node1\n" {
		t.Errorf("host -> pod IP: %q", got)
	}
	for _, addr := range []string{"127.0.0.1", n.Gateway()} {
		if got := get(t, fmt.Sprintf("http://%s:%d/", addr, hostPort)); got != "hello from server-node1\n" {
			t.Errorf("hostPort on %s: %q", addr, got)
		}
	}
	// Pod to pod: the client fetches the server's page by its IP.
	e.Write("client.yaml", harness.SleeperPod("client", fmt.Sprintf("grep client /etc/hosts; wget -qO- http://%s:8080/ > /dev/shm/page; cat /dev/shm/page; %s", server.Status.PodIP, harness.IdleCmd)))
	e.WaitConverged(map[string]bool{"server": true, "host": true, "client": true})
	client := e.Pod("client")
	logFile := filepath.Join(e.Logs, fmt.Sprintf("default_client-node1_%s", client.UID), "main", "0.log")
	harness.WaitFor(t, "the client's log shows the server's page", func() bool {
		data, _ := os.ReadFile(logFile)
		return strings.Contains(string(data), "stdout F hello from server-node1")
	})
	if data, _ := os.ReadFile(logFile); !strings.Contains(string(data), "stdout F "+client.Status.PodIP+"\tclient-node1") {
		t.Errorf("the client's /etc/hosts lacks its own IP %s:\n%s", client.Status.PodIP, data)
	}
	host := e.Pod("host")
	if host.Status.PodIP == "" || strings.HasPrefix(host.Status.PodIP, "10.123.") {
		t.Errorf("hostNetwork pod IP %q, want the node's", host.Status.PodIP)
	}
	// Two pods on the pod network, none for the hostNetwork one.
	if a, ns, v := n.Allocations(), e.NetnsFiles(), n.Veths(); a != 2 || ns != 2 || v != 2 {
		t.Errorf("%d addresses, %d namespaces, %d veths for 2 pod-network pods", a, ns, v)
	}
	for _, f := range []string{"server.yaml", "host.yaml", "client.yaml"} {
		e.Remove(f)
	}
	e.WaitConverged(map[string]bool{})
	harness.WaitFor(t, "everything released", func() bool {
		return n.Allocations() == 0 && e.NetnsFiles() == 0 && n.Veths() == 0
	})
}

// TestNetworkSurvivesCrashes SIGKILLs podsup while it sets up pod networks,
// and restarts it: no address, namespace or veth is leaked.
func TestNetworkSurvivesCrashes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := harness.NewNetwork(t, e.Env, 24)
	names := map[string]bool{}
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("n%d", i)
		names[name] = true
		e.Write(name+".yaml", harness.SleeperPod(name, harness.IdleCmd))
	}
	for round := 0; round < 4; round++ {
		e.Start(n.Args()...)
		time.Sleep(time.Duration(rand.IntN(1200)) * time.Millisecond)
		e.Kill()
		e.Start(n.Args()...)
		e.WaitConverged(names)
		harness.WaitFor(t, fmt.Sprintf("round %d: one address, namespace and veth per pod (have %d, %d, %d)",
			round, n.Allocations(), e.NetnsFiles(), n.Veths()), func() bool {
			return n.Allocations() == len(names) && e.NetnsFiles() == len(names) && n.Veths() == len(names)
		})
		e.CheckNoLeaks(names)
		e.Kill()
		// Replace one pod by another between rounds.
		gone, added := fmt.Sprintf("n%d", round), fmt.Sprintf("m%d", round)
		e.Remove(gone + ".yaml")
		delete(names, gone)
		e.Write(added+".yaml", harness.SleeperPod(added, harness.IdleCmd))
		names[added] = true
	}
}

// TestPoolDoesNotShrink adds and removes a pod 16 times on a pool of 13
// addresses: a leak of one address per cycle would exhaust it.
func TestPoolDoesNotShrink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := harness.NewNetwork(t, e.Env, 28)
	e.Start(n.Args()...)
	const cycles = 16 // more than the pool holds
	for i := range cycles {
		e.Write("cycle.yaml", harness.SleeperPod("cycle", fmt.Sprintf("echo %d; %s", i, harness.IdleCmd)))
		e.WaitConverged(map[string]bool{"cycle": true})
		e.Remove("cycle.yaml")
		e.WaitConverged(map[string]bool{})
		harness.WaitFor(t, fmt.Sprintf("cycle %d: the address released", i), func() bool { return n.Allocations() == 0 })
	}
	if e.NetnsFiles() != 0 || n.Veths() != 0 {
		t.Errorf("after %d cycles: %d namespaces, %d veths", cycles, e.NetnsFiles(), n.Veths())
	}
}

// TestPluginFailure: a broken network leaves the pod Pending with the
// plugin's error, and nothing half made; fixing it lets the pod start.
func TestPluginFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := harness.NewNetwork(t, e.Env, 24)
	n.Write(t, "no-such-plugin")
	e.Write("p.yaml", harness.SleeperPod("p", harness.IdleCmd))
	e.Start(n.Args()...)
	// Between two tries (10 s of back-off), nothing is left of the failed
	// one: no container, namespace or address.
	why := ""
	harness.WaitFor(t, "the pod pending with the plugin's error, nothing half made", func() bool {
		pods, _ := e.Pods()
		if len(pods) != 1 || pods[0].Status.Phase != v1.PodPending ||
			pods[0].Status.Reason != "FailedCreatePodSandBox" || !strings.Contains(pods[0].Status.Message, "no-such-plugin") {
			why = "not pending with the plugin's error"
			return false
		}
		cs, _ := e.Client.Containers(e.Ctx)
		why = fmt.Sprintf("%d containers, %d namespaces, %d addresses", len(cs), e.NetnsFiles(), n.Allocations())
		return len(cs) == 0 && e.NetnsFiles() == 0 && n.Allocations() == 0
	})
	t.Logf("after the failed try: %s", why)
	n.Write(t, "bridge")
	e.WaitConverged(map[string]bool{"p": true})
}

// TestBuiltinNetwork runs a pod on podsup's own default network (bridge
// podsup0, 10.86.0.0/16), as on a machine with no CNI configuration. No other
// podsup may use that network on the machine meanwhile.
func TestBuiltinNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hostPort := testenv.FreePort(t)
	e.Write("server.yaml", fmt.Sprintf(serverPod, "server", hostPort))
	e.Start("--cni-conf-dir", t.TempDir())
	e.WaitConverged(map[string]bool{"server": true})
	ip := e.Pod("server").Status.PodIP
	if !strings.HasPrefix(ip, "10.86.") {
		t.Fatalf("pod IP %q is not in the default 10.86.0.0/16", ip)
	}
	if got := get(t, "http://"+ip+":8080/"); got != "hello from server-node1\n" {
		t.Errorf("host -> pod: %q", got)
	}
	if got := get(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); got != "hello from server-node1\n" {
		t.Errorf("hostPort: %q", got)
	}
	e.Remove("server.yaml")
	e.WaitConverged(map[string]bool{})
	harness.WaitFor(t, "the namespace released", func() bool { return e.NetnsFiles() == 0 })
}

// TestLostNetworkNamespace removes a running pod's network namespace by
// hand, as a failed removal that tore the network down first leaves it: the
// sandbox can hold no new container, so the pod gets a new sandbox and
// network and runs again, rather than failing to create containers in it
// forever.
func TestLostNetworkNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	n := harness.NewNetwork(t, e.Env, 24)
	e.Write("p.yaml", harness.SleeperPod("p", harness.IdleCmd))
	e.Start(append(n.Args(), "--sync-frequency", "2s")...) // a sync notices the loss
	e.WaitConverged(map[string]bool{"p": true})
	before := harness.ContainerIDs(e.Pod("p"))
	files, _ := filepath.Glob(filepath.Join(e.Root, "netns", "*"))
	if len(files) != 1 {
		t.Fatalf("network namespaces %v, want one", files)
	}
	if out, err := exec.Command("umount", files[0]).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", files[0], err, out)
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	e.WaitPod("p", "running in a new sandbox", func(p v1.Pod) bool {
		return harness.ContainerIDs(p) != before && harness.IsRunning(p)
	})
	// Not checkNoLeaks: without the namespace, the bridge plugin cannot
	// learn the old address, and leaves its masquerade rule; nor can it
	// delete the old veth, which goes with the namespace once the old
	// sandbox's last process has.
	harness.WaitFor(t, fmt.Sprintf("one address and namespace (have %d, %d)", n.Allocations(), e.NetnsFiles()),
		func() bool { return n.Allocations() == 1 && e.NetnsFiles() == 1 })
}
