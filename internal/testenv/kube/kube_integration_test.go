//go:build integration

package kube

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestControlPlane starts etcd 3.4 and the apiserver, checks that Debian's
// kubectl talks to it, and that a node's certificate is held to what
// NodeRestriction allows.
func TestControlPlane(t *testing.T) {
	c := Start(t)
	out, err := c.Kubectl("version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, Version) {
		t.Errorf("kubectl version does not show the server's %s:\n%s", Version, out)
	}
	if out, err = c.Kubectl("get", "namespaces"); err != nil || !strings.Contains(out, "kube-node-lease") {
		t.Errorf("kubectl get namespaces: %v\n%s", err, out)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", c.NodeKubeconfig("n1"))
	if err != nil {
		t.Fatal(err)
	}
	node := kubernetes.NewForConfigOrDie(cfg)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{"kubernetes.io/config.mirror": "x"}},
		Spec: v1.PodSpec{NodeName: "n2", Containers: []v1.Container{{Name: "c", Image: "busybox"}}}}
	_, err = node.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "spec.nodeName set to itself") {
		t.Errorf("node n1 created a mirror pod bound to n2: %v", err)
	}
}
