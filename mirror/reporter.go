// Package mirror joins podsup to a cluster the way a kubelet joins it for its
// static pods: it registers the Node, keeps its Lease and status fresh, and
// keeps a mirror pod in the apiserver for every static pod, with the static
// pod's status.
//
// The apiserver never slows the node down: the supervisor hands statuses to
// Update, which only records them and returns; workers reconcile with the
// apiserver in the background and back off while it is unreachable, and catch
// up when it returns. (The kubelet blocks a pod's sync on deleting its mirror
// pod through a dead apiserver; podsup never waits for one.)
//
// Everything the reporter does is what NodeRestriction lets a kubelet do,
// with the identity system:node:<name>: create its own Node and Lease,
// create, delete and patch the status of mirror pods bound to itself.
package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/events"
)

// Defaults of the reporter, the kubelet's where it has them.
const (
	// DefaultStatusUpdateFrequency is how often the Node's status is
	// computed and, when it changed, sent (--node-status-update-frequency).
	DefaultStatusUpdateFrequency = 10 * time.Second
	// statusReportFrequency is how often the status is sent even when
	// nothing changed: the Lease is the heartbeat.
	statusReportFrequency = 5 * time.Minute
	// LeaseDuration is the Lease's leaseDurationSeconds; it is renewed
	// every quarter of it, every 10 s.
	LeaseDuration = 40 * time.Second
	// LeaseNamespace holds the nodes' Leases.
	LeaseNamespace = "kube-node-lease"
	// DefaultMaxPods is the pod capacity reported when none is given.
	DefaultMaxPods = 110

	// requestTimeout bounds each call to the apiserver.
	requestTimeout = 10 * time.Second
	// retryInitial and retryMax bound the back-off of a failed call: a
	// returning apiserver is caught up with within retryMax.
	retryInitial = 500 * time.Millisecond
	retryMax     = 10 * time.Second
	// refusedRetry is how long a pod the apiserver refused waits before it
	// is tried again: never a hot loop, yet a fixed policy is found.
	refusedRetry = 5 * time.Minute
	// staleGrace is how long after start-up mirror pods that no pod
	// claims are kept, so that the pods the sources declare have time to
	// publish their first status and claim theirs.
	staleGrace = 30 * time.Second
	// workers reconcile mirror pods in parallel, one pod each at a time.
	workers = 4
)

// Reporter registers the Node and keeps mirror pods of the static pods.
type Reporter struct {
	client   kubernetes.Interface
	nodeName string
	o        options

	queue      workqueue.TypedRateLimitingInterface[string]
	registered chan struct{} // closed once the Node exists
	started    time.Time

	informer cache.SharedIndexInformer // mirror pods of this node; set before workers start

	mu      sync.Mutex
	node    *v1.Node // as last read or written
	lease   *coordinationv1.Lease
	pods    map[string]*podRecord // by namespace/name
	lastErr map[string]string     // last error logged, by pod key or "node"/"lease"
}

// podRecord is what the reporter knows of one static pod.
type podRecord struct {
	pod  *v1.Pod // latest static pod with its status; nil once gone
	gone bool    // the pod was seen and removed, as opposed to never seen
	// sent is the status last written to the mirror pod sentUID.
	sentUID types.UID
	sent    *v1.PodStatus
	// refused is the config hash of the pod last refused, so a refusal is
	// reported once per version of the pod.
	refused string
}

type options struct {
	clock           clock.WithTicker
	log             *slog.Logger
	events          *events.Recorder
	register        bool
	labels          map[string]string
	taints          []v1.Taint
	statusFrequency time.Duration
	ready           func() error
	pressure        func() []v1.NodeCondition
	sourcesReady    func() bool
	addresses       []v1.NodeAddress
	kubeletPort     int32
	capacity        v1.ResourceList
	allocatable     v1.ResourceList
	runtimeVersion  func(ctx context.Context) (string, error)
	version         string
	agentVersion    string
	hostname        string
	hostInfo        func() v1.NodeSystemInfo
	staleGrace      time.Duration
}

// Option configures a Reporter.
type Option func(*options) error

// WithClock sets the clock of back-offs, heartbeats and status times.
func WithClock(c clock.WithTicker) Option { return func(o *options) error { o.clock = c; return nil } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) error { o.log = l; return nil } }

// WithEvents sets podsup's event recorder, which gets the refusals.
func WithEvents(r *events.Recorder) Option {
	return func(o *options) error { o.events = r; return nil }
}

// WithRegister sets whether the reporter creates its Node (--register-node);
// without, it waits for an administrator to create it.
func WithRegister(register bool) Option {
	return func(o *options) error { o.register = register; return nil }
}

// WithLabels sets the labels the Node is registered with (--node-labels).
func WithLabels(labels map[string]string) Option {
	return func(o *options) error {
		if err := CheckNodeLabels(labels); err != nil {
			return err
		}
		o.labels = labels
		return nil
	}
}

// WithTaints sets the taints the Node is registered with
// (--register-with-taints).
func WithTaints(taints []v1.Taint) Option {
	return func(o *options) error { o.taints = taints; return nil }
}

// WithStatusUpdateFrequency sets how often the Node's status is computed
// and sent when it changed (--node-status-update-frequency).
func WithStatusUpdateFrequency(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("node status update frequency %s: must be positive", d)
		}
		o.statusFrequency = d
		return nil
	}
}

// WithReady sets what the Ready condition reflects: ready while it returns
// nil (the supervisor's Healthy), not ready with its error otherwise.
func WithReady(f func() error) Option { return func(o *options) error { o.ready = f; return nil } }

// WithPressure sets where the MemoryPressure, DiskPressure and PIDPressure
// conditions come from (the eviction manager); without it they are False.
// A condition type it omits is reported False.
func WithPressure(f func() []v1.NodeCondition) Option {
	return func(o *options) error { o.pressure = f; return nil }
}

// WithSourcesReady sets what tells whether every manifest source has
// reported once; until then no mirror pod is taken for stale.
func WithSourcesReady(f func() bool) Option {
	return func(o *options) error { o.sourcesReady = f; return nil }
}

// WithAddresses sets the Node's addresses.
func WithAddresses(addrs []v1.NodeAddress) Option {
	return func(o *options) error { o.addresses = addrs; return nil }
}

// WithKubeletPort sets the port the Node reports as its kubelet endpoint,
// that of podsup's authenticated API (--address): the apiserver reaches it
// there for logs, exec, attach and port-forward, and tries the kubelet's
// 10250 when it is 0.
func WithKubeletPort(port int32) Option {
	return func(o *options) error {
		if port < 0 || port > 65535 {
			return fmt.Errorf("kubelet port %d: want 0 to 65535", port)
		}
		o.kubeletPort = port
		return nil
	}
}

// WithResources sets the Node's capacity and allocatable resources.
func WithResources(capacity, allocatable v1.ResourceList) Option {
	return func(o *options) error { o.capacity, o.allocatable = capacity, allocatable; return nil }
}

// WithRuntimeVersion sets what reports the container runtime's version,
// such as containerd://1.6.20.
func WithRuntimeVersion(f func(ctx context.Context) (string, error)) Option {
	return func(o *options) error { o.runtimeVersion = f; return nil }
}

// WithVersion sets the version reported as the kubelet's: the Kubernetes
// release whose node behaviour podsup implements.
func WithVersion(v string) Option { return func(o *options) error { o.version = v; return nil } }

// WithAgentVersion sets podsup's own version, which the Node carries in
// the AnnotationVersion annotation.
func WithAgentVersion(v string) Option {
	return func(o *options) error { o.agentVersion = v; return nil }
}

// AnnotationVersion is the Node's annotation that names the podsup version
// that runs it: its kubeletVersion is the Kubernetes release podsup
// implements.
const AnnotationVersion = "podsup.io/version"

// WithHostname sets the kubernetes.io/hostname label and Hostname address;
// by default the lowercased host name.
func WithHostname(h string) Option { return func(o *options) error { o.hostname = h; return nil } }

// withHostInfo replaces what is read from the host, for tests.
func withHostInfo(f func() v1.NodeSystemInfo) Option {
	return func(o *options) error { o.hostInfo = f; return nil }
}

// withStaleGrace shortens staleGrace, for tests.
func withStaleGrace(d time.Duration) Option {
	return func(o *options) error { o.staleGrace = d; return nil }
}

// New returns a reporter for the node nodeName; Run starts it.
func New(client kubernetes.Interface, nodeName string, opts ...Option) (*Reporter, error) {
	o := options{register: true, statusFrequency: DefaultStatusUpdateFrequency, staleGrace: staleGrace}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.clock == nil {
		o.clock = clock.RealClock{}
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.events == nil {
		o.events = events.NewRecorder(events.DefaultCapacity, o.log, o.clock)
	}
	if o.ready == nil {
		o.ready = func() error { return nil }
	}
	if o.pressure == nil {
		o.pressure = func() []v1.NodeCondition { return nil }
	}
	if o.sourcesReady == nil {
		o.sourcesReady = func() bool { return true }
	}
	if o.hostname == "" {
		h, _ := os.Hostname()
		o.hostname = strings.ToLower(h)
	}
	if o.hostInfo == nil {
		o.hostInfo = HostInfo
	}
	if o.version == "" {
		o.version = "unknown"
	}
	r := &Reporter{
		client: client, nodeName: nodeName, o: o,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](retryInitial, retryMax),
			workqueue.TypedRateLimitingQueueConfig[string]{Clock: o.clock}),
		registered: make(chan struct{}),
		pods:       map[string]*podRecord{},
		lastErr:    map[string]string{},
	}
	r.informer = coreinformers.NewFilteredPodInformer(client, metav1.NamespaceAll, 0, cache.Indexers{},
		func(opts *metav1.ListOptions) { opts.FieldSelector = "spec.nodeName=" + nodeName })
	return r, nil
}

// Update records a static pod's latest status, or with pod nil that it is
// gone; it is a supervisor status listener. It never blocks on the
// apiserver. pod must not be modified afterwards.
func (r *Reporter) Update(key string, pod *v1.Pod) {
	r.mu.Lock()
	rec := r.pods[key]
	if rec == nil {
		if pod == nil {
			r.mu.Unlock()
			return
		}
		rec = &podRecord{}
		r.pods[key] = rec
	}
	rec.pod, rec.gone = pod, pod == nil
	r.mu.Unlock()
	r.queue.Add(key)
}

// Run registers the Node, then keeps it and the mirror pods up to date
// until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	r.started = r.o.clock.Now()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer r.queue.ShutDown() // before the wait: it releases the workers
	_, err := r.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    r.enqueueObject,
		UpdateFunc: func(_, obj any) { r.enqueueObject(obj) },
		DeleteFunc: r.enqueueObject,
	})
	if err != nil {
		r.o.log.Error("cannot watch mirror pods", "err", err)
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.runNode(ctx)
	}()
	// Owned by ctx, but not waited for: while the apiserver is unreachable,
	// client-go's reflector sleeps out its back-off (up to 30 s) before it
	// looks at ctx again, and podsup's shutdown must not wait for that.
	go r.informer.RunWithContext(ctx)
	select {
	case <-ctx.Done():
		return
	case <-r.registered:
	}
	if !cache.WaitForCacheSync(ctx.Done(), r.informer.HasSynced) {
		return
	}
	r.enqueueAll()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r.processNext(ctx) {
			}
		}()
	}
	// Look at every pod now and then, for what no event reported.
	tick := r.o.clock.NewTicker(r.o.statusFrequency)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			r.enqueueAll()
		}
	}
}

// enqueueObject queues the pod an informer event is about.
func (r *Reporter) enqueueObject(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		r.queue.Add(key)
	}
}

// enqueueAll queues every static pod and every pod bound to this node.
func (r *Reporter) enqueueAll() {
	r.mu.Lock()
	for key := range r.pods {
		r.queue.Add(key)
	}
	r.mu.Unlock()
	for _, key := range r.informer.GetStore().ListKeys() {
		r.queue.Add(key)
	}
}

// processNext reconciles one pod; false once the queue shuts down.
func (r *Reporter) processNext(ctx context.Context) bool {
	key, quit := r.queue.Get()
	if quit {
		return false
	}
	defer r.queue.Done(key)
	retry, err := r.syncPod(ctx, key)
	r.logResult(key, err)
	switch {
	case err != nil && retry == 0:
		r.queue.AddRateLimited(key)
	default:
		r.queue.Forget(key)
		if retry > 0 {
			r.queue.AddAfter(key, retry)
		}
	}
	return true
}

// logResult logs a failure when it differs from the last one for the same
// subject, and the recovery after one, so an unreachable apiserver makes
// one line per pod, not one per retry.
func (r *Reporter) logResult(subject string, err error) {
	r.mu.Lock()
	last := r.lastErr[subject]
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == "" {
		delete(r.lastErr, subject)
	} else {
		r.lastErr[subject] = msg
	}
	r.mu.Unlock()
	switch {
	case msg != "" && msg != last:
		r.o.log.Warn("apiserver call failed; will retry", "subject", subject, "err", err)
	case msg == "" && last != "":
		r.o.log.Info("apiserver calls work again", "subject", subject)
	}
}

// requestContext bounds one call to the apiserver.
func requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, requestTimeout)
}

// nodeOwner is the owner reference NodeRestriction requires of a mirror
// pod: its Node, as controller, without blockOwnerDeletion.
func (r *Reporter) nodeOwner() (metav1.OwnerReference, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.node == nil {
		return metav1.OwnerReference{}, false
	}
	controller := true
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: r.nodeName, UID: r.node.UID, Controller: &controller}, true
}

// defaultLabels are the labels a kubelet puts on its Node.
func (r *Reporter) defaultLabels() map[string]string {
	return map[string]string{
		v1.LabelHostname:   r.o.hostname,
		v1.LabelOSStable:   goruntime.GOOS,
		v1.LabelArchStable: goruntime.GOARCH,
	}
}
