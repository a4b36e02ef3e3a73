package version

import (
	"runtime/debug"
	"strings"
	"sync"
)

// kubernetesFallback is the Kubernetes release podsup implements, for a
// binary without module information.
const kubernetesFallback = "v1.37.2"

// Kubernetes is the Kubernetes release whose node behaviour podsup
// implements, in Kubernetes' version form (v1.37.2): that of the k8s.io/api
// module it is built with, whose v0.37.2 is Kubernetes v1.37.2. The Node
// reports it as its kubeletVersion, which kubeadm and version-skew checks
// read; podsup's own version goes in an annotation.
var Kubernetes = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return kubernetesFallback
	}
	for _, m := range info.Deps {
		if m.Path == "k8s.io/api" {
			if v, ok := kubernetesOf(m.Version); ok {
				return v
			}
		}
	}
	return kubernetesFallback
})

// kubernetesOf turns a staging module's version (v0.37.2) into the
// Kubernetes release's (v1.37.2).
func kubernetesOf(module string) (string, bool) {
	rest, ok := strings.CutPrefix(module, "v0.")
	if !ok || rest == "" {
		return "", false
	}
	return "v1." + rest, true
}
