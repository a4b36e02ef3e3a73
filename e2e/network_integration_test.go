//go:build integration

package e2e

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
)

// testNetwork is a CNI configuration of the test's own: a bridge and a
// subnet no other test uses, with host-local's allocations in the test's
// root directory so they can be counted.
type testNetwork struct {
	confDir, bridge, subnet, ipamDir string
}

func newTestNetwork(t *testing.T, e *env, prefix int) *testNetwork {
	t.Helper()
	n := &testNetwork{
		confDir: t.TempDir(),
		bridge:  fmt.Sprintf("pse%06x", rand.IntN(1<<24)),
		subnet:  fmt.Sprintf("10.123.%d.0/%d", rand.IntN(250)+1, prefix),
		ipamDir: filepath.Join(e.root, "test-ipam"),
	}
	n.write(t, "bridge")
	e.network = n // leaks checks its veths and allocations
	t.Cleanup(func() { exec.Command("ip", "link", "del", n.bridge).Run() })
	return n
}

// write writes the configuration list with the given main plugin type.
func (n *testNetwork) write(t *testing.T, pluginType string) {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "e2e-%s", "plugins": [
  {"type": %q, "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]}`, n.bridge, pluginType, n.bridge, n.subnet, n.ipamDir)
	if err := os.WriteFile(filepath.Join(n.confDir, "10-e2e.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *testNetwork) args() []string { return []string{"--cni-conf-dir", n.confDir} }

// allocations counts host-local's allocated addresses.
func (n *testNetwork) allocations() int { return len(n.allocationOwners()) }

// veths counts the interfaces enslaved to the bridge.
func (n *testNetwork) veths() int {
	out, _ := exec.Command("ip", "-o", "link", "show", "master", n.bridge).Output()
	return strings.Count(string(out), "\n")
}

// netnsFiles counts the pod network namespaces under the root dir.
func (e *env) netnsFiles() int {
	entries, _ := os.ReadDir(filepath.Join(e.root, "netns"))
	return len(entries)
}

func (e *env) pod(name string) v1.Pod {
	e.t.Helper()
	pods, err := e.pods()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range pods {
		if p.Name == name+"-node1" {
			return p
		}
	}
	e.t.Fatalf("pod %s not published", name)
	return v1.Pod{}
}

func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
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
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	hostPort := 20000 + rand.IntN(20000)
	e.write("server.yaml", fmt.Sprintf(serverPod, "server", hostPort))
	e.write("host.yaml", sleeperPod("host", "trap 'exit 0' TERM; while true; do sleep 0.5; done")+"  hostNetwork: true\n")
	e.start(n.args()...)
	e.waitConverged(map[string]bool{"server": true, "host": true}, 60*time.Second)
	server := e.pod("server")
	if !strings.HasPrefix(server.Status.PodIP, strings.TrimSuffix(n.subnet, "0/24")) {
		t.Fatalf("server IP %q is not in %s", server.Status.PodIP, n.subnet)
	}
	if got := get(t, "http://"+server.Status.PodIP+":8080/"); got != "hello from server-node1\n" {
		t.Errorf("host -> pod IP: %q", got)
	}
	for _, addr := range []string{"127.0.0.1", gatewayOf(n.subnet)} {
		if got := get(t, fmt.Sprintf("http://%s:%d/", addr, hostPort)); got != "hello from server-node1\n" {
			t.Errorf("hostPort on %s: %q", addr, got)
		}
	}
	// Pod to pod: the client fetches the server's page by its IP.
	e.write("client.yaml", sleeperPod("client", fmt.Sprintf("grep client /etc/hosts; wget -qO- http://%s:8080/ > /dev/shm/page; cat /dev/shm/page; trap 'exit 0' TERM; while true; do sleep 0.5; done", server.Status.PodIP)))
	e.waitConverged(map[string]bool{"server": true, "host": true, "client": true}, 60*time.Second)
	client := e.pod("client")
	logFile := filepath.Join(e.logs, fmt.Sprintf("default_client-node1_%s", client.UID), "main", "0.log")
	waitFor(t, 15*time.Second, "the client's log shows the server's page", func() bool {
		data, _ := os.ReadFile(logFile)
		return strings.Contains(string(data), "stdout F hello from server-node1")
	})
	if data, _ := os.ReadFile(logFile); !strings.Contains(string(data), "stdout F "+client.Status.PodIP+"\tclient-node1") {
		t.Errorf("the client's /etc/hosts lacks its own IP %s:\n%s", client.Status.PodIP, data)
	}
	host := e.pod("host")
	if host.Status.PodIP == "" || strings.HasPrefix(host.Status.PodIP, "10.123.") {
		t.Errorf("hostNetwork pod IP %q, want the node's", host.Status.PodIP)
	}
	// Two pods on the pod network, none for the hostNetwork one.
	if a, ns, v := n.allocations(), e.netnsFiles(), n.veths(); a != 2 || ns != 2 || v != 2 {
		t.Errorf("%d addresses, %d namespaces, %d veths for 2 pod-network pods", a, ns, v)
	}
	for _, f := range []string{"server.yaml", "host.yaml", "client.yaml"} {
		e.remove(f)
	}
	e.waitConverged(map[string]bool{}, 60*time.Second)
	waitFor(t, 30*time.Second, "everything released", func() bool {
		return n.allocations() == 0 && e.netnsFiles() == 0 && n.veths() == 0
	})
}

func gatewayOf(subnet string) string {
	return strings.TrimSuffix(strings.SplitN(subnet, "/", 2)[0], "0") + "1"
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within %s: %s", timeout, what)
}

// TestNetworkSurvivesCrashes SIGKILLs podsup while it sets up pod networks,
// and restarts it: no address, namespace or veth is leaked.
func TestNetworkSurvivesCrashes(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	names := map[string]bool{}
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("n%d", i)
		names[name] = true
		e.write(name+".yaml", sleeperPod(name, "trap 'exit 0' TERM; while true; do sleep 0.5; done"))
	}
	for round := 0; round < 4; round++ {
		e.start(n.args()...)
		time.Sleep(time.Duration(rand.IntN(1200)) * time.Millisecond)
		e.kill()
		e.start(n.args()...)
		e.waitConverged(names, 60*time.Second)
		waitFor(t, 20*time.Second, fmt.Sprintf("round %d: one address, namespace and veth per pod (have %d, %d, %d)",
			round, n.allocations(), e.netnsFiles(), n.veths()), func() bool {
			return n.allocations() == len(names) && e.netnsFiles() == len(names) && n.veths() == len(names)
		})
		e.checkNoLeaks(names)
		e.kill()
		// Replace one pod by another between rounds.
		gone, added := fmt.Sprintf("n%d", round), fmt.Sprintf("m%d", round)
		e.remove(gone + ".yaml")
		delete(names, gone)
		e.write(added+".yaml", sleeperPod(added, "trap 'exit 0' TERM; while true; do sleep 0.5; done"))
		names[added] = true
	}
}

// TestPoolDoesNotShrink adds and removes a pod many times on a pool of 13
// addresses: a leak of one address per cycle would exhaust it.
func TestPoolDoesNotShrink(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 28)
	e.start(n.args()...)
	for i := 0; i < 30; i++ {
		e.write("cycle.yaml", sleeperPod("cycle", fmt.Sprintf("echo %d; trap 'exit 0' TERM; while true; do sleep 0.2; done", i)))
		e.waitConverged(map[string]bool{"cycle": true}, 30*time.Second)
		e.remove("cycle.yaml")
		e.waitConverged(map[string]bool{}, 30*time.Second)
		waitFor(t, 10*time.Second, fmt.Sprintf("cycle %d: the address released", i), func() bool { return n.allocations() == 0 })
	}
	if e.netnsFiles() != 0 || n.veths() != 0 {
		t.Errorf("after 30 cycles: %d namespaces, %d veths", e.netnsFiles(), n.veths())
	}
}

// TestPluginFailure: a broken network leaves the pod Pending with the
// plugin's error, and nothing half made; fixing it lets the pod start.
func TestPluginFailure(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	n.write(t, "no-such-plugin")
	e.write("p.yaml", sleeperPod("p", "trap 'exit 0' TERM; while true; do sleep 0.5; done"))
	e.start(n.args()...)
	waitFor(t, 30*time.Second, "the pod pending with the plugin's error", func() bool {
		pods, _ := e.pods()
		return len(pods) == 1 && pods[0].Status.Phase == v1.PodPending &&
			pods[0].Status.Reason == "FailedCreatePodSandBox" && strings.Contains(pods[0].Status.Message, "no-such-plugin")
	})
	cs, _ := e.client.Containers(e.ctx)
	if len(cs) != 0 || e.netnsFiles() != 0 || n.allocations() != 0 {
		t.Errorf("a failed network left %d containers, %d namespaces, %d addresses", len(cs), e.netnsFiles(), n.allocations())
	}
	n.write(t, "bridge")
	e.waitConverged(map[string]bool{"p": true}, 60*time.Second)
}

// TestBuiltinNetwork runs a pod on podsup's own default network (bridge
// podsup0, 10.86.0.0/16), as on a machine with no CNI configuration. No other
// podsup may use that network on the machine meanwhile.
func TestBuiltinNetwork(t *testing.T) {
	e := newEnv(t)
	hostPort := 20000 + rand.IntN(20000)
	e.write("server.yaml", fmt.Sprintf(serverPod, "server", hostPort))
	e.start("--cni-conf-dir", t.TempDir())
	e.waitConverged(map[string]bool{"server": true}, 60*time.Second)
	ip := e.pod("server").Status.PodIP
	if !strings.HasPrefix(ip, "10.86.") {
		t.Fatalf("pod IP %q is not in the default 10.86.0.0/16", ip)
	}
	if got := get(t, "http://"+ip+":8080/"); got != "hello from server-node1\n" {
		t.Errorf("host -> pod: %q", got)
	}
	if got := get(t, fmt.Sprintf("http://127.0.0.1:%d/", hostPort)); got != "hello from server-node1\n" {
		t.Errorf("hostPort: %q", got)
	}
	e.remove("server.yaml")
	e.waitConverged(map[string]bool{}, 30*time.Second)
	waitFor(t, 20*time.Second, "the namespace released", func() bool { return e.netnsFiles() == 0 })
}

// TestLostNetworkNamespace removes a running pod's network namespace by
// hand, as a failed removal that tore the network down first leaves it: the
// sandbox can hold no new container, so the pod gets a new sandbox and
// network and runs again, rather than failing to create containers in it
// forever.
func TestLostNetworkNamespace(t *testing.T) {
	e := newEnv(t)
	n := newTestNetwork(t, e, 24)
	e.write("p.yaml", sleeperPod("p", "trap 'exit 0' TERM; while true; do sleep 0.5; done"))
	e.start(append(n.args(), "--sync-frequency", "2s")...) // a sync notices the loss
	e.waitConverged(map[string]bool{"p": true}, 60*time.Second)
	before := containerIDs(e.pod("p"))
	files, _ := filepath.Glob(filepath.Join(e.root, "netns", "*"))
	if len(files) != 1 {
		t.Fatalf("network namespaces %v, want one", files)
	}
	if out, err := exec.Command("umount", files[0]).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", files[0], err, out)
	}
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	e.waitPod("p", 60*time.Second, "running in a new sandbox", func(p v1.Pod) bool {
		return containerIDs(p) != before && isRunning(p)
	})
	// Not checkNoLeaks: without the namespace, the bridge plugin cannot
	// learn the old address, and leaves its masquerade rule; nor can it
	// delete the old veth, which goes with the namespace once the old
	// sandbox's last process has.
	waitFor(t, 20*time.Second, fmt.Sprintf("one address and namespace (have %d, %d)", n.allocations(), e.netnsFiles()),
		func() bool { return n.allocations() == 1 && e.netnsFiles() == 1 })
}
