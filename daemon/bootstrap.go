package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	certificatesv1client "k8s.io/client-go/kubernetes/typed/certificates/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/certificate"
	"k8s.io/client-go/util/connrotation"
	"k8s.io/client-go/util/watchlist"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// clientCertPrefix names the client certificate files in --cert-dir, as
// the kubelet's: kubelet-client-<time>.pem and the kubelet-client-current.pem
// symlink to the newest.
const clientCertPrefix = "kubelet-client"

// certBootstrap is the TLS bootstrap of --bootstrap-kubeconfig, as the
// kubelet's with certificate rotation on.
type certBootstrap struct {
	kubeconfig, bootstrapKubeconfig, certDir string
	nodeName                                 string
	log                                      *slog.Logger
	clock                                    clock.PassiveClock
	newClient                                newClientFunc
}

// client is the apiserver's client. When --kubeconfig has a valid client
// certificate in a file of its own, not the one of --cert-dir, it is used
// as it is and podsup requests nothing; one inline (kubeadm init's
// kubelet.conf) seeds --cert-dir and is rotated out at once, as the
// kubelet does. Otherwise the client presents the newest
// certificate of --cert-dir, which a certificate manager requests, with
// the credentials of --bootstrap-kubeconfig while there is none, and
// renews at 70 to 90% of its lifetime; --kubeconfig is written to point
// at it.
func (b certBootstrap) client(ctx context.Context) (*kubeClient, error) {
	// The certificate manager and its store log to podsup's log and stop
	// with ctx.
	logger := logr.FromSlogHandler(b.log.With("component", "client-certificate").Handler())
	store, err := certificate.NewFileStoreWithLogger(logger, clientCertPrefix, b.certDir, b.certDir, "", "")
	if err != nil {
		return nil, fmt.Errorf("--cert-dir %s: %w", b.certDir, err)
	}
	current, certFile, err := validClientCert(b.kubeconfig, b.clock.Now())
	// seedCert and seedKey are a certificate of --kubeconfig's own, inline,
	// as kubeadm init writes kubelet.conf: as the kubelet does, the
	// certificate manager makes it the first of --cert-dir (when that has
	// none) and rotates it out at once, and kubeadm's kubelet-finalize then
	// points kubelet.conf at kubelet-client-current.pem.
	var seedCert, seedKey []byte
	switch {
	case err != nil:
		b.log.Info("--kubeconfig has no valid client certificate: requesting one with --bootstrap-kubeconfig",
			"kubeconfig", b.kubeconfig, "bootstrap-kubeconfig", b.bootstrapKubeconfig, "reason", err.Error())
		if current, err = b.writeKubeconfig(store.CurrentPath()); err != nil {
			return nil, err
		}
	case certFile == "" && current.KeyFile == "":
		b.log.Info("--kubeconfig has a client certificate inline: it becomes the first of --cert-dir, and is rotated",
			"kubeconfig", b.kubeconfig, "cert-dir", b.certDir)
		seedCert, seedKey = current.CertData, current.KeyData
	case !samePath(certFile, store.CurrentPath()):
		b.log.Info("--kubeconfig has a valid client certificate outside --cert-dir: podsup neither requests nor renews one",
			"kubeconfig", b.kubeconfig, "cert-dir", b.certDir)
		return plainKubeClient(b.kubeconfig, b.newClient)
	}

	certs := &notifyingStore{FileStore: store, log: b.log, issued: make(chan struct{}),
		dialer: connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)}
	if cert, err := store.Current(); err == nil && cert.Leaf != nil && b.clock.Now().Before(cert.Leaf.NotAfter) {
		certs.current.Store(cert)
		certs.once.Do(func() { close(certs.issued) })
	}
	cfg, err := certs.clientConfig(current)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", b.kubeconfig, err)
	}
	k, err := newKubeClientFor(cfg, certs.issued, b.newClient, "--kubeconfig "+b.kubeconfig)
	if err != nil {
		return nil, err
	}
	mctx := klog.NewContext(ctx, logger)
	k.certs, err = certificate.NewManager(&certificate.Config{
		Ctx: &mctx,
		ClientsetFn: func(current *tls.Certificate) (kubernetes.Interface, error) {
			if current != nil { // renewing: the node's own certificate may ask
				return loggingCSRs{Interface: k.client, log: b.log}, nil
			}
			bc, err := clientcmd.BuildConfigFromFlags("", b.bootstrapKubeconfig)
			if err != nil {
				return nil, fmt.Errorf("--bootstrap-kubeconfig %s: %w", b.bootstrapKubeconfig, err)
			}
			client, err := b.newClient(bc)
			if err != nil {
				return nil, fmt.Errorf("--bootstrap-kubeconfig %s: %w", b.bootstrapKubeconfig, err)
			}
			return loggingCSRs{Interface: client, log: b.log}, nil
		},
		Template: &x509.CertificateRequest{Subject: pkix.Name{
			CommonName: "system:node:" + b.nodeName, Organization: []string{"system:nodes"}}},
		SignerName:              certificatesv1.KubeAPIServerClientKubeletSignerName,
		BootstrapCertificatePEM: seedCert,
		BootstrapKeyPEM:         seedKey,
		Usages: []certificatesv1.KeyUsage{
			certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		CertificateStore: certs,
	})
	if err != nil {
		return nil, fmt.Errorf("--cert-dir %s: %w", b.certDir, err)
	}
	return k, nil
}

// samePath says whether two paths name the same file name, relative ones
// taken from the working directory, as --cert-dir may be.
func samePath(a, b string) bool {
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return a != "" && errA == nil && errB == nil && absA == absB
}

// validClientCert returns the configuration of kubeconfig and the file of
// its client certificate ("" when inline) if it has a client certificate
// valid at now, or an error saying why not.
func validClientCert(kubeconfig string, now time.Time) (*rest.Config, string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, "", err
	}
	certPEM, keyPEM := cfg.CertData, cfg.KeyData
	if cfg.CertFile != "" {
		if certPEM, err = os.ReadFile(cfg.CertFile); err != nil {
			return nil, "", err
		}
	}
	if cfg.KeyFile != "" {
		if keyPEM, err = os.ReadFile(cfg.KeyFile); err != nil {
			return nil, "", err
		}
	}
	if len(certPEM) == 0 {
		return nil, "", errors.New("no client certificate")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "", err
	}
	for _, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, "", err
		}
		if now.After(c.NotAfter) || now.Before(c.NotBefore) {
			return nil, "", fmt.Errorf("client certificate %q valid from %s to %s", c.Subject.CommonName,
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return cfg, cfg.CertFile, nil
}

// writeKubeconfig writes --kubeconfig, readable by its owner only, with
// the apiserver and CA of --bootstrap-kubeconfig and the client
// certificate and key of pemPath, as the kubelet does before it has the
// certificate; it returns the bootstrap configuration.
func (b certBootstrap) writeKubeconfig(pemPath string) (*rest.Config, error) {
	bc, err := clientcmd.BuildConfigFromFlags("", b.bootstrapKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--bootstrap-kubeconfig %s: %w", b.bootstrapKubeconfig, err)
	}
	caData := bc.CAData
	if bc.CAFile != "" {
		if caData, err = os.ReadFile(bc.CAFile); err != nil {
			return nil, fmt.Errorf("--bootstrap-kubeconfig %s: %w", b.bootstrapKubeconfig, err)
		}
	}
	kc := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{"default-cluster": {
			Server: bc.Host, CertificateAuthorityData: caData, InsecureSkipTLSVerify: bc.Insecure, TLSServerName: bc.ServerName}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{"default-auth": {ClientCertificate: pemPath, ClientKey: pemPath}},
		Contexts: map[string]*clientcmdapi.Context{"default-context": {
			Cluster: "default-cluster", AuthInfo: "default-auth", Namespace: "default"}},
		CurrentContext: "default-context",
	}
	if err := clientcmd.WriteToFile(kc, b.kubeconfig); err != nil { // 0600
		return nil, fmt.Errorf("--kubeconfig %s: %w", b.kubeconfig, err)
	}
	return bc, nil
}

// notifyingStore is the file store of the client certificates, which also
// keeps the newest certificate for the client's TLS handshakes, closes the
// connections made with the previous one and says when the first arrives.
type notifyingStore struct {
	certificate.FileStore
	log     *slog.Logger
	current atomic.Pointer[tls.Certificate]
	// dialer made every connection of the client, so a new certificate
	// is used at once, not only on new connections.
	dialer *connrotation.Dialer
	issued chan struct{} // closed by once, at the first certificate
	once   sync.Once
}

var _ certificate.Store = (*notifyingStore)(nil)

// clientConfig is base, the apiserver and its CA, with a transport that
// presents the store's newest certificate, as the kubelet's rotating
// transport: client-go reloads a certificate file only every 5 minutes,
// and only one that exists when the client is made.
func (s *notifyingStore) clientConfig(base *rest.Config) (*rest.Config, error) {
	cfg := rest.AnonymousClientConfig(base)
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	if tlsConfig == nil {
		return nil, fmt.Errorf("apiserver %s: a client certificate needs https", cfg.Host)
	}
	tlsConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert := s.current.Load(); cert != nil {
			return cert, nil
		}
		return &tls.Certificate{}, nil // none yet: the handshake goes without
	}
	cfg.Transport = utilnet.SetTransportDefaults(&http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 10 * time.Second, TLSClientConfig: tlsConfig,
		MaxIdleConnsPerHost: 25, DialContext: s.dialer.DialContext,
	})
	cfg.TLSClientConfig = rest.TLSClientConfig{} // in the transport now
	return cfg, nil
}

// Update stores a new certificate and key and switches the client to them.
func (s *notifyingStore) Update(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := s.FileStore.Update(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	s.current.Store(cert)
	s.dialer.CloseAll()
	if cert.Leaf != nil {
		s.log.Info("client certificate issued", "file", s.CurrentPath(), "subject", cert.Leaf.Subject.String(),
			"not-after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	s.once.Do(func() { close(s.issued) })
	return cert, nil
}

// loggingCSRs is a clientset whose CertificateSigningRequest creations are
// logged: the certificate manager then waits for the approval, silently.
type loggingCSRs struct {
	kubernetes.Interface
	log *slog.Logger
}

// IsWatchListSemanticsUnSupported passes on what the wrapped clientset
// says of itself: client-go's reflectors ask (fake clientsets stream no
// watch lists), and an embedded interface would hide it.
func (c loggingCSRs) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(c.Interface)
}

func (c loggingCSRs) CertificatesV1() certificatesv1client.CertificatesV1Interface {
	return loggingCertificatesV1{CertificatesV1Interface: c.Interface.CertificatesV1(), log: c.log}
}

type loggingCertificatesV1 struct {
	certificatesv1client.CertificatesV1Interface
	log *slog.Logger
}

func (c loggingCertificatesV1) CertificateSigningRequests() certificatesv1client.CertificateSigningRequestInterface {
	return loggingCSRClient{CertificateSigningRequestInterface: c.CertificatesV1Interface.CertificateSigningRequests(), log: c.log}
}

type loggingCSRClient struct {
	certificatesv1client.CertificateSigningRequestInterface
	log *slog.Logger
}

func (c loggingCSRClient) Create(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, opts metav1.CreateOptions) (*certificatesv1.CertificateSigningRequest, error) {
	out, err := c.CertificateSigningRequestInterface.Create(ctx, csr, opts)
	if err == nil {
		c.log.Info(fmt.Sprintf("waiting for the CertificateSigningRequest %s to be approved and signed", out.Name),
			"csr", out.Name, "signer", out.Spec.SignerName)
	}
	return out, err
}
