package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/certificate"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/version"
)

// kubeClient is the apiserver of --kubeconfig, shared by the mirror
// reporter and the authenticated API's reviews.
type kubeClient struct {
	client kubernetes.Interface
	host   string
	// ready is closed once the client has its credentials: at once, or
	// when the first client certificate of a TLS bootstrap is issued.
	ready <-chan struct{}
	// certs renews the client certificate; nil unless podsup requested it.
	certs certificate.Manager
}

// newKubeClient connects to the apiserver of --kubeconfig; nil without
// one. With --bootstrap-kubeconfig and no valid client certificate in
// --kubeconfig, it writes --kubeconfig and its client waits for the
// certificate start requests. It makes no request.
func newKubeClient(ctx context.Context, mc MirrorConfig, nodeName string, log *slog.Logger, clk clock.PassiveClock) (*kubeClient, error) {
	if mc.Kubeconfig == "" {
		return nil, nil
	}
	if mc.BootstrapKubeconfig == "" {
		return plainKubeClient(mc.Kubeconfig, newClientset)
	}
	b := certBootstrap{kubeconfig: mc.Kubeconfig, bootstrapKubeconfig: mc.BootstrapKubeconfig, certDir: mc.CertDir,
		nodeName: nodeName, log: log, clock: clk, newClient: newClientset}
	return b.client(ctx)
}

// newClientFunc makes a clientset; kubernetes.NewForConfig but in tests.
type newClientFunc func(*rest.Config) (kubernetes.Interface, error)

func newClientset(cfg *rest.Config) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(cfg)
}

// plainKubeClient is the client of the credentials of kubeconfig as they
// are; client-go reloads a certificate file they name when it changes.
func plainKubeClient(kubeconfig string, newClient newClientFunc) (*kubeClient, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
	}
	ready := make(chan struct{})
	close(ready)
	return newKubeClientFor(cfg, ready, newClient, "--kubeconfig "+kubeconfig)
}

// newKubeClientFor sets podsup's client settings on cfg and makes the
// client; what names the flag and file in errors.
func newKubeClientFor(cfg *rest.Config, ready <-chan struct{}, newClient newClientFunc, what string) (*kubeClient, error) {
	cfg.UserAgent = "podsup/" + version.Version
	cfg.QPS, cfg.Burst = 50, 100 // the kubelet's
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &kubeClient{client: client, host: cfg.Host, ready: ready}, nil
}

// start starts renewing the client certificate, when podsup does, until
// ctx ends.
func (k *kubeClient) start() {
	if k != nil && k.certs != nil {
		k.certs.Start() // stopped by the context of its certificate.Config
	}
}
