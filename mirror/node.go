package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// runNode registers the Node, then renews its Lease every quarter of its
// duration and sends its status when it changes, until ctx ends.
func (r *Reporter) runNode(ctx context.Context) {
	delay := retryInitial
	for {
		err := r.registerNode(ctx)
		r.logResult("node", err)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-r.o.clock.After(delay):
		}
		delay = min(2*delay, retryMax)
	}
	close(r.registered)
	r.logResult("lease", r.renewLease(ctx))
	leaseTick := r.o.clock.NewTicker(LeaseDuration / 4)
	defer leaseTick.Stop()
	statusTick := r.o.clock.NewTicker(r.o.statusFrequency)
	defer statusTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-leaseTick.C():
			r.logResult("lease", r.renewLease(ctx))
		case <-statusTick.C():
			r.logResult("node", r.syncNodeStatus(ctx))
		}
	}
}

// registerNode creates the Node, or, when it exists, adopts it (a podsup
// restart, or a Node an administrator made), then sends its status. With
// registration off, it only waits for the Node to exist.
func (r *Reporter) registerNode(ctx context.Context) error {
	nodes := r.client.CoreV1().Nodes()
	rctx, cancel := requestContext(ctx)
	defer cancel()
	node, err := nodes.Get(rctx, r.nodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && !r.o.register:
		return fmt.Errorf("node %s does not exist, and --register-node is false: waiting for it to be created", r.nodeName)
	case apierrors.IsNotFound(err):
		node, err = nodes.Create(rctx, r.initialNode(ctx), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("register node %s: created meanwhile; will adopt it", r.nodeName)
		}
		if err != nil {
			return fmt.Errorf("register node %s: %w", r.nodeName, err)
		}
		r.o.log.Info("node registered", "node", r.nodeName, "uid", node.UID)
	case err != nil:
		return fmt.Errorf("get node %s: %w", r.nodeName, err)
	default:
		r.o.log.Info("node exists; adopting it", "node", r.nodeName, "uid", node.UID)
		if node, err = r.annotateVersion(ctx, node); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.node = node
	r.mu.Unlock()
	return r.syncNodeStatus(ctx)
}

// initialNode is the Node as registered: its labels and taints, which a
// node may set only at registration (NodeRestriction), and its status.
func (r *Reporter) initialNode(ctx context.Context) *v1.Node {
	labels := r.defaultLabels()
	for k, v := range r.o.labels {
		labels[k] = v
	}
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: r.nodeName, Labels: labels, Annotations: r.versionAnnotation()},
		Spec:       v1.NodeSpec{Taints: r.o.taints},
	}
	node.Status = r.nodeStatus(ctx, nil)
	return node
}

// versionAnnotation is the annotation naming podsup's version, if known.
func (r *Reporter) versionAnnotation() map[string]string {
	if r.o.agentVersion == "" {
		return nil
	}
	return map[string]string{AnnotationVersion: r.o.agentVersion}
}

// annotateVersion brings an adopted Node's version annotation up to date,
// after podsup was upgraded.
func (r *Reporter) annotateVersion(ctx context.Context, node *v1.Node) (*v1.Node, error) {
	if r.o.agentVersion == "" || node.Annotations[AnnotationVersion] == r.o.agentVersion {
		return node, nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": r.versionAnnotation()}})
	if err != nil {
		return nil, err
	}
	rctx, cancel := requestContext(ctx)
	defer cancel()
	node, err = r.client.CoreV1().Nodes().Patch(rctx, r.nodeName, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("annotate node %s with podsup's version: %w", r.nodeName, err)
	}
	return node, nil
}

// syncNodeStatus sends the Node's status when it changed, or when it was
// last sent statusReportFrequency ago. A Node deleted under podsup is
// registered again.
func (r *Reporter) syncNodeStatus(ctx context.Context) error {
	r.mu.Lock()
	old := r.node
	r.mu.Unlock()
	status := r.nodeStatus(ctx, old)
	if !statusChanged(old.Status, status) && r.o.clock.Since(lastHeartbeat(old.Status)) < statusReportFrequency {
		return nil
	}
	oldData, err := json.Marshal(v1.Node{Status: old.Status})
	if err != nil {
		return err
	}
	newData, err := json.Marshal(v1.Node{Status: status})
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, v1.Node{})
	if err != nil {
		return fmt.Errorf("node status patch: %w", err)
	}
	rctx, cancel := requestContext(ctx)
	defer cancel()
	node, err := r.client.CoreV1().Nodes().Patch(rctx, r.nodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		r.o.log.Warn("the node was deleted; registering it again", "node", r.nodeName)
		return r.registerNode(ctx)
	}
	if err != nil {
		return fmt.Errorf("update status of node %s: %w", r.nodeName, err)
	}
	r.mu.Lock()
	r.node = node
	r.mu.Unlock()
	return nil
}

// nodeStatus is the Node's status now. Condition transition times carry
// over from old while a condition keeps its status.
func (r *Reporter) nodeStatus(ctx context.Context, old *v1.Node) v1.NodeStatus {
	info := r.o.hostInfo()
	info.KubeletVersion = r.o.version
	if old != nil {
		info.ContainerRuntimeVersion = old.Status.NodeInfo.ContainerRuntimeVersion
	}
	if r.o.runtimeVersion != nil {
		rctx, cancel := requestContext(ctx)
		if v, err := r.o.runtimeVersion(rctx); err == nil {
			info.ContainerRuntimeVersion = v
		}
		cancel()
	}
	st := v1.NodeStatus{
		Capacity:    r.o.capacity,
		Allocatable: r.o.allocatable,
		Addresses:   r.addresses(),
		NodeInfo:    info,
		DaemonEndpoints: v1.NodeDaemonEndpoints{
			KubeletEndpoint: v1.DaemonEndpoint{Port: r.o.kubeletPort},
		},
	}
	now := metav1.NewTime(r.o.clock.Now())
	var previous []v1.NodeCondition
	if old != nil {
		previous = old.Status.Conditions
	}
	for _, c := range r.conditions() {
		c.LastHeartbeatTime = now
		c.LastTransitionTime = now
		for _, p := range previous {
			if p.Type == c.Type && p.Status == c.Status {
				c.LastTransitionTime = p.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	return st
}

// conditions are the node's conditions, heartbeat and transition times
// aside: the pressure conditions from the eviction manager, False when it
// reports none, and Ready from the supervisor's health.
func (r *Reporter) conditions() []v1.NodeCondition {
	reported := map[v1.NodeConditionType]v1.NodeCondition{}
	for _, c := range r.o.pressure() {
		reported[c.Type] = c
	}
	pressure := []struct {
		typ    v1.NodeConditionType
		reason string
		what   string
	}{
		{v1.NodeMemoryPressure, "KubeletHasSufficientMemory", "sufficient memory available"},
		{v1.NodeDiskPressure, "KubeletHasNoDiskPressure", "no disk pressure"},
		{v1.NodePIDPressure, "KubeletHasSufficientPID", "sufficient PID available"},
	}
	var out []v1.NodeCondition
	for _, p := range pressure {
		c, ok := reported[p.typ]
		if !ok {
			c = v1.NodeCondition{Type: p.typ, Status: v1.ConditionFalse, Reason: p.reason, Message: "podsup has " + p.what}
		}
		out = append(out, c)
	}
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "podsup is posting ready status"}
	if err := r.o.ready(); err != nil {
		ready.Status, ready.Reason, ready.Message = v1.ConditionFalse, "KubeletNotReady", err.Error()
	}
	return append(out, ready)
}

// addresses are the configured addresses and the Hostname address.
func (r *Reporter) addresses() []v1.NodeAddress {
	out := append([]v1.NodeAddress(nil), r.o.addresses...)
	for _, a := range out {
		if a.Type == v1.NodeHostName {
			return out
		}
	}
	return append(out, v1.NodeAddress{Type: v1.NodeHostName, Address: r.o.hostname})
}

// statusChanged compares two statuses without their heartbeat times.
func statusChanged(a, b v1.NodeStatus) bool {
	strip := func(s v1.NodeStatus) v1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
			s.Conditions[i].LastTransitionTime = metav1.NewTime(s.Conditions[i].LastTransitionTime.Truncate(time.Second))
		}
		return s
	}
	return !equality.Semantic.DeepEqual(strip(a), strip(b))
}

// lastHeartbeat is when a status was last sent: its Ready heartbeat.
func lastHeartbeat(s v1.NodeStatus) time.Time {
	for _, c := range s.Conditions {
		if c.Type == v1.NodeReady {
			return c.LastHeartbeatTime.Time
		}
	}
	return time.Time{}
}

// renewLease renews the node's Lease in kube-node-lease, creating it the
// first time, owned by the Node so that it goes with it.
func (r *Reporter) renewLease(ctx context.Context) error {
	leases := r.client.CoordinationV1().Leases(LeaseNamespace)
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	rctx, cancel := requestContext(ctx)
	defer cancel()
	if lease == nil {
		got, err := leases.Get(rctx, r.nodeName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("get lease of node %s: %w", r.nodeName, err)
		default:
			lease = got
		}
	}
	now := metav1.NewMicroTime(r.o.clock.Now())
	desired := r.desiredLease(lease, now)
	var err error
	if lease == nil {
		lease, err = leases.Create(rctx, desired, metav1.CreateOptions{})
	} else {
		lease, err = leases.Update(rctx, desired, metav1.UpdateOptions{})
	}
	if err != nil {
		r.mu.Lock()
		r.lease = nil // read it afresh next time: it may have changed under us
		r.mu.Unlock()
		return fmt.Errorf("renew lease of node %s: %w", r.nodeName, err)
	}
	r.mu.Lock()
	r.lease = lease
	r.mu.Unlock()
	return nil
}

// desiredLease is the Lease held by this node, renewed now.
func (r *Reporter) desiredLease(old *coordinationv1.Lease, now metav1.MicroTime) *coordinationv1.Lease {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: r.nodeName, Namespace: LeaseNamespace}}
	if old != nil {
		lease = old.DeepCopy()
	}
	holder := r.nodeName
	duration := int32(LeaseDuration / time.Second)
	lease.Spec.HolderIdentity = &holder
	lease.Spec.LeaseDurationSeconds = &duration
	lease.Spec.RenewTime = &now
	if owner, ok := r.nodeOwner(); ok {
		owner.Controller = nil
		lease.OwnerReferences = []metav1.OwnerReference{owner}
	}
	return lease
}

// nodeEvent records an event on the Node in the apiserver, for kubectl
// describe node; best effort, as the kubelet's events are.
func (r *Reporter) nodeEvent(ctx context.Context, typ, reason, msg string) {
	r.mu.Lock()
	node := r.node
	r.mu.Unlock()
	if node == nil {
		return
	}
	now := metav1.NewTime(r.o.clock.Now())
	ev := &v1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: r.nodeName + ".", Namespace: metav1.NamespaceDefault},
		InvolvedObject: v1.ObjectReference{Kind: "Node", Name: r.nodeName, UID: node.UID, APIVersion: "v1"},
		Reason:         reason, Message: msg, Type: typ,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		Source: v1.EventSource{Component: "podsup", Host: r.nodeName},
	}
	rctx, cancel := requestContext(ctx)
	defer cancel()
	if _, err := r.client.CoreV1().Events(metav1.NamespaceDefault).Create(rctx, ev, metav1.CreateOptions{}); err != nil {
		r.o.log.Debug("cannot record an event on the node", "reason", reason, "err", err)
	}
}
