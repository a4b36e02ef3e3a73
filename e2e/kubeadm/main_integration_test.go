//go:build integration

// Package kubeadm runs kubeadm's flows end to end with podsup standing in
// for the kubelet: init, upgrade apply, certs renew and join, against
// kubeadm and control-plane images of kube.Version built on the spot, in a
// mount and network namespace of the test's own (box) with a containerd of
// its own, so that kubeadm's fixed paths and ports are the test's alone.
package kubeadm

import (
	"testing"

	"github.com/podsup/podsup/e2e/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }
