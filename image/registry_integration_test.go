//go:build integration

package image_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/internal/testenv"
)

const (
	regUser     = "alice"
	regPassword = "alice-s3cret-pw"
)

// registryEnv is a registry holding the busybox test image, and a client.
type registryEnv struct {
	t      *testing.T
	client *containerd.Client
	reg    *testenv.Registry
	ref    string
	digest string
}

func newRegistryEnv(t *testing.T) *registryEnv {
	client := testenv.Client(t)
	reg := testenv.StartRegistry(t, map[string]string{regUser: regPassword})
	ctx, _ := testenv.Namespace(t, client)
	img := testenv.ImportBusybox(t, ctx, client)
	e := &registryEnv{t: t, client: client, reg: reg, ref: reg.Host + "/podsup/busybox:1", digest: img.Target().Digest.String()}
	reg.Push(t, ctx, client, img, e.ref, regUser, regPassword)
	return e
}

// puller makes a puller for a fresh namespace, so every pull downloads.
func (e *registryEnv) puller(opts ...image.PullerOption) (context.Context, *image.Puller) {
	ctx, _ := testenv.Namespace(e.t, e.client)
	p, err := image.NewPuller(e.client, append([]image.PullerOption{image.WithSnapshotter(testenv.Snapshotter)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return ctx, p
}

func writeConfig(t *testing.T, host, user, password string) string {
	path := filepath.Join(t.TempDir(), "config.json")
	auth := b64(user + ":" + password)
	if err := os.WriteFile(path, []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func pullSecret(host, user, password string) *v1.Secret {
	return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "regcred"}, Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{"` + host + `":{"auth":"` + b64(user+":"+password) + `"}}}`)}}
}

// TestRegistryPulls pulls from a real registry over TLS with htpasswd
// authentication: with a config.json, with a pull secret, with wrong and
// without credentials, and without the CA.
func TestRegistryPulls(t *testing.T) {
	e := newRegistryEnv(t)
	registries := image.WithRegistries(image.Registries{CADir: e.reg.CADir})

	t.Run("config.json", func(t *testing.T) {
		cfg := image.NewCredentialFile(writeConfig(t, e.reg.Host, regUser, regPassword))
		ctx, p := e.puller(registries, image.WithCredentialFile(cfg))
		start := time.Now()
		img, err := p.Pull(ctx, e.ref)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pulled %s in %s", e.ref, time.Since(start).Round(time.Millisecond))
		if img.Target().Digest.String() != e.digest {
			t.Errorf("digest %s, want %s", img.Target().Digest, e.digest)
		}
		if ok, err := img.IsUnpacked(ctx, testenv.Snapshotter); !ok || err != nil {
			t.Errorf("not unpacked: %v", err)
		}
	})

	t.Run("pull secret", func(t *testing.T) {
		ctx, p := e.puller(registries)
		if _, err := p.Pull(ctx, e.ref, image.WithPullSecrets([]*v1.Secret{pullSecret(e.reg.Host, regUser, regPassword)})); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		ctx, p := e.puller(registries)
		_, err := p.Pull(ctx, e.ref, image.WithPullSecrets([]*v1.Secret{pullSecret(e.reg.Host, regUser, "wrong-password")}))
		if err == nil {
			t.Fatal("pulled with a wrong password")
		}
		t.Logf("error: %v", err)
		for _, want := range []string{"with credentials from secret default/regcred", "401 Unauthorized", "the registry says: UNAUTHORIZED: authentication required"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q", want)
			}
		}
		if strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), b64(regUser+":wrong-password")) {
			t.Error("error leaks the password")
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		ctx, p := e.puller(registries)
		_, err := p.Pull(ctx, e.ref)
		if err == nil || !strings.Contains(err.Error(), "401 Unauthorized; the registry says: UNAUTHORIZED: authentication required") {
			t.Fatalf("error %v, want the registry's 401", err)
		}
	})

	t.Run("loopback is verified too", func(t *testing.T) {
		cfg := image.NewCredentialFile(writeConfig(t, e.reg.Host, regUser, regPassword))
		ctx, p := e.puller(image.WithCredentialFile(cfg))
		_, err := p.Pull(ctx, e.ref)
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("error %v, want an unknown authority", err)
		}
	})
}

// holdingProxy is a plain-HTTP proxy to the registry that counts blob
// downloads, so a shared pull shows as one download, and holds each blob
// body after its first holdAfter bytes until the test lets it go, so a pull
// is in progress for as long as the test looks at it.
type holdingProxy struct {
	host    string
	release chan struct{}
	letGo   func() // closes release, once

	mu    sync.Mutex
	blobs map[string]int // GETs by path
}

func startHoldingProxy(t *testing.T, reg *testenv.Registry, holdAfter int) *holdingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hp := &holdingProxy{host: ln.Addr().String(), release: make(chan struct{}), blobs: map[string]int{}}
	hp.letGo = sync.OnceFunc(func() { close(hp.release) })
	target, _ := url.Parse("https://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: reg.CA}}
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.Contains(resp.Request.URL.Path, "/blobs/") && resp.StatusCode == http.StatusOK {
			hp.mu.Lock()
			hp.blobs[resp.Request.URL.Path]++
			hp.mu.Unlock()
			resp.Body = &heldBody{ReadCloser: resp.Body, left: holdAfter, release: hp.release, gone: resp.Request.Context().Done()}
		}
		return nil
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() {
		hp.letGo()
		srv.Close()
	})
	return hp
}

func (hp *holdingProxy) maxGets() int {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	n := 0
	for _, c := range hp.blobs {
		n = max(n, c)
	}
	return n
}

// heldBody passes its first left bytes, then waits for release, or for
// the client to go away.
type heldBody struct {
	io.ReadCloser
	left    int
	release <-chan struct{}
	gone    <-chan struct{}
}

func (b *heldBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		select {
		case <-b.release:
		case <-b.gone:
			return 0, context.Canceled
		}
		return b.ReadCloser.Read(p)
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= n
	return n, err
}

// pushUnique pushes an image of one layer of random bytes as ref, and
// removes it from containerd, so that pulling it downloads every byte:
// containerd shares blobs between namespaces.
func (e *registryEnv) pushUnique(ref string, size int) {
	data := make([]byte, size)
	rand.Read(data)
	b := &image.Build{Ref: "podsup.test/random:1", Files: []image.File{{Path: "/data", Mode: 0o644, Data: data}}}
	ctx, _ := testenv.Namespace(e.t, e.client)
	img, err := b.Import(ctx, e.client, testenv.Snapshotter)
	if err != nil {
		e.t.Fatal(err)
	}
	e.reg.Push(e.t, ctx, e.client, img, ref, regUser, regPassword)
	// A synchronous delete runs containerd's garbage collection, which
	// removes the blobs and the snapshot.
	if err := e.client.ImageService().Delete(ctx, b.Ref, images.SynchronousDelete()); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.client.ContentStore().Info(ctx, img.Target().Digest); !errdefs.IsNotFound(err) {
		e.t.Fatalf("the pushed manifest is still in containerd: %v", err)
	}
}

// TestInsecureRegistryAndProgress: plain HTTP only for a host listed as
// insecure; a pull reports its bytes while it runs; two waiters share one
// download. The proxy holds the download after its first MiB until both
// waiters have joined and a partial report has come.
func TestInsecureRegistryAndProgress(t *testing.T) {
	e := newRegistryEnv(t)
	e.pushUnique(e.reg.Host+"/podsup/random:1", 3<<20)
	hp := startHoldingProxy(t, e.reg, 1<<20)
	ref := hp.host + "/podsup/random:1"
	cfg := image.NewCredentialFile(writeConfig(t, hp.host, regUser, regPassword))

	ctx, p := e.puller(image.WithCredentialFile(cfg))
	if _, err := p.Pull(ctx, ref); err == nil || !strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		t.Fatalf("plain HTTP without --insecure-registry: %v", err)
	}

	ctx, p = e.puller(image.WithCredentialFile(cfg), image.WithRegistries(image.Registries{Insecure: []string{hp.host}}),
		image.WithProgressInterval(100*time.Millisecond))
	var mu sync.Mutex
	var reports []image.PullProgress
	listen := image.WithProgress(func(pr image.PullProgress) {
		mu.Lock()
		reports = append(reports, pr)
		mu.Unlock()
	})
	partial := func(pr image.PullProgress) bool {
		return pr.Phase == image.PullRunning && pr.Done > 0 && pr.Done < pr.Total
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Pull(ctx, ref, listen)
		}()
	}
	waitProc(t, "Pulls() listing the held pull with two waiters and bytes done", func() bool {
		for _, pr := range p.Pulls() {
			if pr.Image == ref && pr.Waiters == 2 && pr.Done > 0 {
				t.Logf("Pulls(): %s %s, %s, %d waiters, credentials from %s", pr.Image, pr.Phase, pr.Bytes(), pr.Waiters, pr.Credentials)
				return true
			}
		}
		return false
	})
	waitProc(t, "a report of the partial download", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(reports, partial)
	})
	hp.letGo()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := hp.maxGets(); n != 1 {
		t.Errorf("a blob was downloaded %d times for two waiters, want once", n)
	}
	mu.Lock()
	defer mu.Unlock()
	last := reports[len(reports)-1]
	t.Logf("%d reports, last: %s %s in %s", len(reports), last.Phase, last.Bytes(), last.Elapsed.Round(time.Millisecond))
	if last.Phase != image.PullDone || last.Done != last.Total || last.Total < 3<<20 {
		t.Errorf("last report %+v", last)
	}
}
