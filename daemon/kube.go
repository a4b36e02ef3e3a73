package daemon

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podsup/podsup/version"
)

// kubeClient is the apiserver of --kubeconfig, shared by the mirror
// reporter and the authenticated API's reviews.
type kubeClient struct {
	client kubernetes.Interface
	host   string
}

// newKubeClient connects to the apiserver of kubeconfig; nil without one.
// It makes no request.
func newKubeClient(kubeconfig string) (*kubeClient, error) {
	if kubeconfig == "" {
		return nil, nil
	}
	rest, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
	}
	rest.UserAgent = "podsup/" + version.Version
	rest.QPS, rest.Burst = 50, 100 // the kubelet's
	rest.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
	}
	return &kubeClient{client: client, host: rest.Host}, nil
}
