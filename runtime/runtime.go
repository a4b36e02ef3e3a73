package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	containerdlog "github.com/containerd/log"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/cgroups"
	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/podspec"
)

// Defaults of the runtime layer.
const (
	DefaultSnapshotter = "overlayfs"
	runcRuntime        = "io.containerd.runc.v2"
)

// Runtime runs pods on containerd.
type Runtime struct {
	client       *containerd.Client
	namespace    string
	snapshotter  string
	rootDir      string
	seccompDir   string // Localhost seccomp profiles
	logDir       string
	pauseRef     string         // empty: podsup's built-in pause image
	cgroupDriver string         // the name asked for (--cgroup-driver), until New makes the driver
	cgroups      cgroups.Driver // places pods' and containers' cgroups
	logMaxSize   int64
	logMaxFiles  int
	node         podspec.Node // what the pod-to-container translation knows of this host
	dns          podspec.DNSConfig
	clock        clock.Clock
	log          *slog.Logger
	onExit       func(podKey string)

	pauseOnce sync.Mutex // serialises building the built-in pause image
	usernsMu  sync.Mutex // serialises handing out user namespace ranges
	images    imageState // the image puller (pull.go)

	mu       sync.Mutex
	attached map[string]*attachment // by container ID: tasks this process copies logs from and monitors
	// removing are the containers being removed: an observation meanwhile
	// must not adopt their stopped tasks (see track).
	removing map[string]bool
	closed   bool
	wg       sync.WaitGroup // exit monitors and log copies
	stop     context.CancelFunc
	stopCtx  context.Context
}

// Option configures a Runtime.
type Option func(*Runtime) error

// WithNamespace sets the containerd namespace (--containerd-namespace).
func WithNamespace(ns string) Option { return func(r *Runtime) error { r.namespace = ns; return nil } }

// WithRootDir sets podsup's state directory (--root-dir).
func WithRootDir(dir string) Option { return func(r *Runtime) error { r.rootDir = dir; return nil } }

// DefaultSeccompDir is where the kubelet looks for Localhost seccomp
// profiles (its root directory's seccomp/), so a node moved from the
// kubelet keeps them.
const DefaultSeccompDir = "/var/lib/kubelet/seccomp"

// WithSeccompDir sets where Localhost seccomp profiles are
// (--seccomp-profile-root).
func WithSeccompDir(dir string) Option {
	return func(r *Runtime) error { r.seccompDir = dir; return nil }
}

// WithLogDir sets the container log directory (--log-dir).
func WithLogDir(dir string) Option { return func(r *Runtime) error { r.logDir = dir; return nil } }

// WithPauseImage replaces the built-in pause image (--pod-infra-container-image).
func WithPauseImage(ref string) Option {
	return func(r *Runtime) error { r.pauseRef = ref; return nil }
}

// WithSnapshotter sets the containerd snapshotter.
func WithSnapshotter(s string) Option {
	return func(r *Runtime) error { r.snapshotter = s; return nil }
}

// WithCgroupDriver sets "cgroupfs" (the default) or "systemd"; see
// UseRuntimeCgroupDriver for the runtime's own say.
func WithCgroupDriver(d string) Option {
	return func(r *Runtime) error { r.cgroupDriver = d; return nil }
}

// WithLogRotation sets --container-log-max-size and --container-log-max-files.
func WithLogRotation(maxSize int64, maxFiles int) Option {
	return func(r *Runtime) error {
		if maxSize < 1024 || maxFiles < 2 {
			return fmt.Errorf("container log rotation: max size %d must be at least 1Ki and max files %d at least 2", maxSize, maxFiles)
		}
		r.logMaxSize, r.logMaxFiles = maxSize, maxFiles
		return nil
	}
}

// WithDNS sets what /etc/resolv.conf of pods is made from.
func WithDNS(d podspec.DNSConfig) Option { return func(r *Runtime) error { r.dns = d; return nil } }

// WithClock sets the clock.
func WithClock(c clock.Clock) Option { return func(r *Runtime) error { r.clock = c; return nil } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(r *Runtime) error { r.log = l; return nil } }

// WithExitHandler is called with a pod's key whenever one of its tasks exits.
func WithExitHandler(f func(podKey string)) Option {
	return func(r *Runtime) error { r.onExit = f; return nil }
}

// New connects to containerd at address. The connection is made lazily and
// re-made by gRPC, so podsup starts, and keeps running, while containerd is
// down; calls fail until it is back.
func New(address string, opts ...Option) (*Runtime, error) {
	r := &Runtime{
		namespace: "podsup", snapshotter: DefaultSnapshotter, rootDir: "/var/lib/podsup", logDir: "/var/log/pods",
		cgroupDriver: "cgroupfs", logMaxSize: 10 << 20, logMaxFiles: 5, seccompDir: DefaultSeccompDir,
		clock: clock.RealClock{}, log: slog.Default(), onExit: func(string) {},
		dns:      podspec.DNSConfig{HostResolvConf: "/etc/resolv.conf", ClusterDomain: "cluster.local"},
		attached: map[string]*attachment{}, removing: map[string]bool{},
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if err := r.setCgroupDriver(r.cgroupDriver); err != nil {
		return nil, err
	}
	quietContainerdLogs(r.log)
	client, err := containerd.New(address, containerd.WithDefaultNamespace(r.namespace), containerd.WithDefaultRuntime(runcRuntime),
		containerd.WithExtraDialOpts([]grpc.DialOption{grpc.WithConnectParams(reconnect)}))
	if err != nil {
		return nil, fmt.Errorf("containerd client for %s: %w", address, err)
	}
	r.client = client
	r.node = podspec.Node{MemoryCapacity: memoryCapacity(), OOMFloor: oomScoreFloor(), SeccompDir: r.seccompDir, AppArmor: hostAppArmor(), SELinux: hostSELinux(),
		HugePageSizes: slices.Sorted(maps.Keys(hostHugePages(hugepagesDir))), Hugetlb: cgroups.HasController(cgroups.Root, "hugetlb")}
	if !r.node.Hugetlb && len(r.node.HugePageSizes) > 0 {
		r.log.Warn("the hugetlb cgroup controller is not available: containers' hugepages limits are not set (admission still counts the host's reserved pages)")
	}
	r.stopCtx, r.stop = context.WithCancel(context.Background())
	for _, dir := range []string{r.podsDir(), r.fifoDir(), r.logDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			client.Close()
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	removeExecOutputs(r.fifoDir(), r.log)
	return r, nil
}

// reconnect is how gRPC retries a lost containerd: at most 3 s apart, as
// the 1.7 client did. The 2.x client stretches its back-off to its dial
// timeout (10 s), which would keep podsup from seeing a restarted containerd
// for up to 10 s.
var reconnect = grpc.ConnectParams{Backoff: func() backoff.Config {
	b := backoff.DefaultConfig
	b.MaxDelay = 3 * time.Second
	return b
}()}

// Client is the containerd client, for the packages that read stats and
// manage images in the same namespace.
func (r *Runtime) Client() *containerd.Client { return r.client }

// Namespace is the containerd namespace podsup uses.
func (r *Runtime) Namespace() string { return r.namespace }

// Context returns ctx in podsup's containerd namespace.
func (r *Runtime) Context(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.namespace)
}

// Ping reports whether containerd answers.
func (r *Runtime) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := r.client.Version(ctx)
	return err
}

// Version is containerd's version, for node info.
func (r *Runtime) Version(ctx context.Context) (string, error) {
	v, err := r.client.Version(r.Context(ctx))
	if err != nil {
		return "", err
	}
	return "containerd://" + v.Version, nil
}

// Close stops copying logs and monitoring tasks, and closes the connection.
// Containers keep running: podsup attaches to them again when it restarts.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.wg.Wait()
	r.mu.Lock()
	for id, a := range r.attached {
		// Stop copying but keep the FIFOs: the shim's own reader keeps the
		// container going, and the next podsup attaches to them.
		detachIO(a.task.IO())
		closeLog(a.logs)
		delete(r.attached, id)
	}
	r.mu.Unlock()
	return r.client.Close()
}

func (r *Runtime) podsDir() string { return filepath.Join(r.rootDir, "pods") }
func (r *Runtime) fifoDir() string { return filepath.Join(r.rootDir, "fifo") }

// PodDir is the directory of a pod: /etc/hosts, resolv.conf, hostname,
// termination messages and, later, volumes. It is named after the pod key's
// hash so that any pod name fits, with the readable key in a file inside.
func (r *Runtime) PodDir(key string) string {
	return filepath.Join(r.podsDir(), PodHash(key))
}

// memoryCapacity is the machine's memory in bytes, for oom_score_adj.
func memoryCapacity() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// capSysResource is CAP_SYS_RESOURCE's bit in /proc/self/status CapEff.
const capSysResource = 24

// oomScoreFloor is the lowest oom_score_adj runc may set here. Lowering a
// score below the process's own floor needs CAP_SYS_RESOURCE, which a
// podsup started in a container or by a restricted service manager may
// lack; then every negative value is clamped to 0 rather than failing the pod.
func oomScoreFloor() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err == nil && caps&(1<<capSysResource) != 0 {
				return -1000
			}
		}
	}
	return 0
}

// errClosed is returned by calls made after Close.
var errClosed = errors.New("runtime closed")

// PauseImage returns the pause image, building and importing podsup's own
// on first use unless --pod-infra-container-image names another.
func (r *Runtime) PauseImage(ctx context.Context) (containerd.Image, error) {
	if r.pauseRef != "" {
		return r.EnsureImage(ctx, r.pauseRef, PullIfNotPresent)
	}
	r.pauseOnce.Lock()
	defer r.pauseOnce.Unlock()
	b, err := image.PauseImage()
	if err != nil {
		return nil, err
	}
	if img, err := r.client.GetImage(ctx, b.Ref); err == nil {
		return img, r.unpack(ctx, img)
	}
	r.log.Info("building the pause image", "image", b.Ref)
	return b.Import(ctx, r.client, r.snapshotter)
}

// quietContainerdLogs sends the containerd client's own logging (logrus, as
// "trying next host" during pulls) to podsup's logger at debug level, so it
// neither floods standard output nor escapes the log format.
func quietContainerdLogs(log *slog.Logger) {
	l := containerdlog.L.Logger
	l.SetOutput(slogWriter{log})
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableQuote: true})
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("containerd client", "log", strings.TrimSpace(string(p)))
	return len(p), nil
}
