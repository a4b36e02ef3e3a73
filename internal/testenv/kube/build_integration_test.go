//go:build integration

package kube

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBuild builds the control plane's programs into the cache, or finds
// them there, and checks each one runs. hack/setup.sh runs it alone, with a
// long -timeout, before the suite: on a new machine the first build of
// kube-apiserver takes many minutes, which must not count against the
// -timeout of the tests that start a control plane.
func TestBuild(t *testing.T) {
	b := Build(t)
	k := BuildKubeadm(t)
	for _, c := range []struct {
		bin  string
		want string
	}{
		{b.APIServer, "Kubernetes " + Version},
		{b.Etcd, "etcd Version: 3."},
		{b.Kubectl, "Client Version"},
		{k.Kubeadm, Version},
		{k.ControllerManager, "Kubernetes " + Version},
		{k.Scheduler, "Kubernetes " + Version},
		{k.Etcd, "etcd Version: " + EtcdVersion},
	} {
		args := []string{"--version"}
		switch c.bin {
		case b.Kubectl:
			args = []string{"version", "--client"}
		case k.Kubeadm:
			args = []string{"version", "-o", "short"}
		}
		out, err := exec.Command(c.bin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s %s: %v: %s (want %q)", c.bin, strings.Join(args, " "), err, out, c.want)
		}
	}
}
