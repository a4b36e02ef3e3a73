//go:build integration

package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/events"
	"github.com/podsup/podsup/internal/testenv/kube"
	"github.com/podsup/podsup/manifest"
)

// TestReporterUnderNodeRestriction runs the reporter as system:node:node1
// against a real apiserver with the Node authorizer and NodeRestriction:
// everything it does must be what a kubelet may do.
func TestReporterUnderNodeRestriction(t *testing.T) {
	c := kube.Start(t)
	admin := c.Client()
	ctx := context.Background()

	// A mirror pod of this node left from before a restart.
	stale := newMirrorPod(staticPod("old", "h0", v1.PodRunning), metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: "node1", UID: "gone"})
	stale.Namespace = "default"
	if _, err := admin.CoreV1().Pods("default").Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", c.NodeKubeconfig("node1"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	recorder := events.NewRecorder(100, log, clock.RealClock{})
	r, err := New(kubernetes.NewForConfigOrDie(cfg), "node1", WithLogger(log), WithEvents(recorder), withStaleGrace(time.Second),
		WithLabels(map[string]string{"node.kubernetes.io/role": "edge"}),
		WithTaints([]v1.Taint{{Key: "podsup.io/test", Effect: v1.TaintEffectNoSchedule}}),
		WithAddresses([]v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "192.0.2.10"}}),
		WithVersion("v0.0.0-test"), WithRuntimeVersion(func(context.Context) (string, error) { return "containerd://test", nil }))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	etcd := staticPod("etcd", "h1", v1.PodRunning)
	forbidden := staticPod("secret", "s1", v1.PodRunning)
	forbidden.Spec.Volumes = []v1.Volume{{Name: "s", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}}}
	r.Update(manifest.PodKey(etcd), etcd)
	r.Update(manifest.PodKey(forbidden), forbidden)

	eventually(t, "node Ready with its lease", func() error {
		node, err := admin.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !ready(node) || node.Labels["node.kubernetes.io/role"] != "edge" || len(node.Spec.Taints) == 0 ||
			node.Status.NodeInfo.ContainerRuntimeVersion != "containerd://test" || node.Status.NodeInfo.KubeletVersion != "v0.0.0-test" {
			return fmt.Errorf("node %+v", node.Status)
		}
		lease, err := admin.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "node1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lease.Spec.RenewTime == nil || len(lease.OwnerReferences) != 1 || lease.OwnerReferences[0].UID != node.UID {
			return fmt.Errorf("lease %+v", lease)
		}
		return nil
	})

	mirror := waitMirror(t, admin, etcd, func(m *v1.Pod) error {
		if m.Status.Phase != v1.PodRunning || len(m.Status.ContainerStatuses) != 1 || m.Status.ContainerStatuses[0].RestartCount != 1 {
			return fmt.Errorf("status %+v", m.Status)
		}
		return nil
	})
	if o := mirror.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].Name != "node1" {
		t.Errorf("owner references %v", o)
	}

	t.Log("a container restarts")
	restarted := etcd.DeepCopy()
	restarted.Status.ContainerStatuses[0].RestartCount = 2
	r.Update(manifest.PodKey(etcd), restarted)
	waitMirror(t, admin, etcd, func(m *v1.Pod) error {
		if n := m.Status.ContainerStatuses[0].RestartCount; n != 2 {
			return fmt.Errorf("restartCount %d", n)
		}
		return nil
	})

	t.Log("a user deletes the mirror pod")
	if err := admin.CoreV1().Pods("kube-system").Delete(ctx, etcd.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitMirror(t, admin, etcd, func(m *v1.Pod) error {
		if m.UID == mirror.UID || m.Status.Phase != v1.PodRunning {
			return fmt.Errorf("not yet recreated: uid %s, phase %s", m.UID, m.Status.Phase)
		}
		return nil
	})

	t.Log("the static pod changes")
	changed := staticPod("etcd", "h2", v1.PodPending)
	r.Update(manifest.PodKey(changed), changed)
	waitMirror(t, admin, changed, func(m *v1.Pod) error { return nil })

	if _, err := admin.CoreV1().Pods("kube-system").Get(ctx, forbidden.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("mirror pod of a pod with a secret volume: %v", err)
	}
	if evs := recorder.List(manifest.PodKey(forbidden)); len(evs) != 1 || evs[0].Reason != reasonMirrorRefused ||
		!strings.Contains(evs[0].Message, "spec.volumes[0].secret") {
		t.Errorf("events of the refused pod: %+v", evs)
	}
	eventually(t, "the refusal as an event on the node", func() error {
		list, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=node1"})
		if err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Reason == reasonMirrorRefused {
				return nil
			}
		}
		return fmt.Errorf("%d events, none %s", len(list.Items), reasonMirrorRefused)
	})

	eventually(t, "the stale mirror pod deleted", func() error {
		_, err := admin.CoreV1().Pods("default").Get(ctx, stale.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})

	t.Log("the static pod goes")
	r.Update(manifest.PodKey(etcd), nil)
	eventually(t, "the mirror pod deleted", func() error {
		_, err := admin.CoreV1().Pods("kube-system").Get(ctx, etcd.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
}

func ready(node *v1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// waitMirror waits until the mirror pod of static exists, of its version,
// and passes check.
func waitMirror(t *testing.T, admin kubernetes.Interface, static *v1.Pod, check func(*v1.Pod) error) *v1.Pod {
	t.Helper()
	var m *v1.Pod
	eventually(t, "mirror pod "+manifest.PodKey(static), func() error {
		var err error
		m, err = admin.CoreV1().Pods(static.Namespace).Get(context.Background(), static.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h := m.Annotations[manifest.AnnotationMirror]; h != configHash(static) {
			return fmt.Errorf("config.mirror %q, want %q", h, configHash(static))
		}
		return check(m)
	})
	return m
}
