package kube

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podsup/podsup/internal/testenv"
)

// Ports are a control plane's ports, all on 127.0.0.1.
type Ports struct {
	EtcdClient, EtcdPeer, APIServer int
}

// Cluster is a control plane of a test's own: its directory (certificates,
// etcd's data, logs), ports and kubeconfigs.
type Cluster struct {
	t      testing.TB
	Bin    Binaries
	PKI    *PKI
	Dir    string
	Ports  Ports
	Server string // https://127.0.0.1:<port>
	Admin  string // kubeconfig of a system:masters user

	etcd, apiserver *exec.Cmd
}

// NewCluster prepares a control plane: programs, certificates, free ports
// and the admin kubeconfig. Start runs it; a test that runs it otherwise
// (as static pods) uses EtcdArgs and APIServerArgs.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Bin: Build(t), Dir: t.TempDir()}
	var err error
	if c.PKI, err = NewPKI(filepath.Join(c.Dir, "pki")); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	c.Ports = Ports{EtcdClient: ports[0], EtcdPeer: ports[1], APIServer: ports[2]}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", c.Ports.APIServer)
	if c.Admin, err = c.PKI.Kubeconfig("admin", c.Server, "admin", "system:masters"); err != nil {
		t.Fatal(err)
	}
	return c
}

// Start runs etcd and kube-apiserver on the host, waits until the
// apiserver is ready, and stops both when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c := NewCluster(t)
	t.Cleanup(func() {
		stop(c.apiserver)
		stop(c.etcd)
		if t.Failed() {
			t.Logf("control plane logs:\n%s\n%s", tail(c.logPath("etcd"), 2000), tail(c.logPath("kube-apiserver"), 4000))
		}
	})
	c.etcd = c.run("etcd", c.Bin.Etcd, EtcdArgs(filepath.Join(c.Dir, "etcd"), c.Ports)...)
	c.StartAPIServer()
	if err := BindKubeletClient(context.Background(), c.Client()); err != nil {
		t.Fatal(err)
	}
	return c
}

// The apiserver's identity toward kubelets, as kubeadm names it.
const (
	// KubeletClientUser is the common name of the apiserver's client
	// certificate for kubelets (--kubelet-client-certificate).
	KubeletClientUser = "kube-apiserver-kubelet-client"
	// KubeletClientBinding binds KubeletClientUser to the ClusterRole
	// system:kubelet-api-admin.
	KubeletClientBinding = "kubeadm:apiserver-kubelet-client"
)

// BindKubeletClient lets the apiserver's client certificate use the
// kubelet API, as kubeadm does: a kubelet (or podsup) authorizing with
// SubjectAccessReviews then lets the apiserver through for logs, exec,
// attach and port-forward.
func BindKubeletClient(ctx context.Context, admin kubernetes.Interface) error {
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: KubeletClientBinding},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: KubeletClientUser}}}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bind %s to system:kubelet-api-admin: %w", KubeletClientUser, err)
	}
	return nil
}

// StartAPIServer starts the apiserver again after StopAPIServer, and waits
// until it is ready.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	c.apiserver = c.run("kube-apiserver", c.Bin.APIServer, APIServerArgs(c.PKI.Dir, c.Ports)...)
	c.WaitReady(StartLimit)
}

// StartLimit bounds the wait for a control plane to be ready: the
// apiserver takes seconds on an idle machine and far longer when its cores
// are busy, so only one that never gets ready fails a test.
const StartLimit = 5 * time.Minute

// requestTimeout bounds one request to the apiserver, of the tests' clients
// and kubectl.
const requestTimeout = time.Minute

// StopAPIServer stops the apiserver; etcd keeps its data.
func (c *Cluster) StopAPIServer() {
	stop(c.apiserver)
	c.apiserver = nil
}

// EtcdArgs are the arguments of a single-member etcd on 127.0.0.1.
func EtcdArgs(dataDir string, p Ports) []string {
	client := fmt.Sprintf("http://127.0.0.1:%d", p.EtcdClient)
	peer := fmt.Sprintf("http://127.0.0.1:%d", p.EtcdPeer)
	return []string{"--name=test", "--data-dir=" + dataDir,
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer, "--initial-cluster=test=" + peer}
}

// APIServerArgs are the arguments of a kube-apiserver on 127.0.0.1 with
// the certificates of pkiDir, as kubeadm configures it: client certificates
// and bootstrap tokens, the Node and RBAC authorizers, NodeRestriction, and
// a client certificate to reach kubelets at their InternalIP first
// (podsup's --node-ip).
func APIServerArgs(pkiDir string, p Ports) []string {
	pki := func(name string) string { return filepath.Join(pkiDir, name) }
	return []string{
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(p.APIServer),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", p.EtcdClient),
		"--tls-cert-file=" + pki("apiserver.crt"), "--tls-private-key-file=" + pki("apiserver.key"),
		"--client-ca-file=" + pki("ca.crt"), "--enable-bootstrap-token-auth",
		"--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"), "--kubelet-client-key=" + pki("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki("sa.pub"), "--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/12", "--allow-privileged=true",
		"--endpoint-reconciler-type=none", "--profiling=false",
	}
}

// NodeKubeconfig writes the kubeconfig of a node: a client certificate for
// system:node:<node> in system:nodes, what the Node authorizer and
// NodeRestriction recognise.
func (c *Cluster) NodeKubeconfig(node string) string {
	c.t.Helper()
	path, err := c.PKI.Kubeconfig("node-"+node, c.Server, "system:node:"+node, "system:nodes")
	if err != nil {
		c.t.Fatal(err)
	}
	return path
}

// Client is a client of the admin.
func (c *Cluster) Client() kubernetes.Interface {
	c.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Admin)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg.Timeout = requestTimeout
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return client
}

// Kubectl runs kubectl as the admin and returns its output.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	cmd := exec.Command(c.Bin.Kubectl, append([]string{"--kubeconfig", c.Admin, "--request-timeout=" + requestTimeout.String()}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %v: %v: %s", args, err, errOut.String())
	}
	return out.String(), nil
}

// KubectlCommand is kubectl as the admin, for a test to wire its input and
// output; ctx kills it. It has no --request-timeout: that would end the
// streams of exec, attach, logs -f and port-forward.
func (c *Cluster) KubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, c.Bin.Kubectl, append([]string{"--kubeconfig", c.Admin}, args...)...)
}

// WaitReady waits until the apiserver answers /readyz and has made the
// namespace of node leases.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	client := c.Client()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil {
			_, err = client.CoreV1().Namespaces().Get(ctx, "kube-node-lease", metav1.GetOptions{})
		}
		cancel()
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("apiserver %s not ready within %s: %v\n%s", c.Server, timeout, err, tail(c.logPath("kube-apiserver"), 4000))
}

func (c *Cluster) logPath(name string) string { return filepath.Join(c.Dir, name+".log") }

// run starts a program of the control plane in a process group of its own,
// appending its output to its log.
func (c *Cluster) run(name, bin string, args ...string) *exec.Cmd {
	c.t.Helper()
	log, err := os.OpenFile(c.logPath(name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	log.Close() // the child has its own descriptor
	return cmd
}

// stop stops a process with SIGTERM, and SIGKILL after 10 s.
func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// freePorts returns n distinct ports no other test gets.
func freePorts(t testing.TB, n int) []int {
	var ports []int
	for range n {
		ports = append(ports, testenv.FreePort(t))
	}
	return ports
}

// tail is the last n bytes of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return fmt.Sprintf("== %s\n%s", path, data)
}
