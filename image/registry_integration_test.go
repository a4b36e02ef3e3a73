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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
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

// throttle is a plain-HTTP proxy to the registry that sends blobs at a
// fixed rate and counts blob downloads, so a pull is slow enough to report
// progress, and a shared pull shows as one download.
type throttle struct {
	host  string
	mu    sync.Mutex
	blobs map[string]int // GETs by path
}

func startThrottle(t *testing.T, reg *testenv.Registry, bytesPerSecond int) *throttle {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	th := &throttle{host: ln.Addr().String(), blobs: map[string]int{}}
	target, _ := url.Parse("https://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: reg.CA}}
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.Contains(resp.Request.URL.Path, "/blobs/") && resp.StatusCode == http.StatusOK {
			th.mu.Lock()
			th.blobs[resp.Request.URL.Path]++
			th.mu.Unlock()
			resp.Body = slowBody{resp.Body, bytesPerSecond}
		}
		return nil
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return th
}

func (th *throttle) maxGets() int {
	th.mu.Lock()
	defer th.mu.Unlock()
	n := 0
	for _, c := range th.blobs {
		n = max(n, c)
	}
	return n
}

type slowBody struct {
	io.ReadCloser
	rate int
}

func (b slowBody) Read(p []byte) (int, error) {
	chunk := b.rate / 20
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := b.ReadCloser.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(b.rate))
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
// insecure; a slow pull reports its bytes while it runs; two waiters share
// one download.
func TestInsecureRegistryAndProgress(t *testing.T) {
	e := newRegistryEnv(t)
	e.pushUnique(e.reg.Host+"/podsup/random:1", 3<<20)
	th := startThrottle(t, e.reg, 2<<20)
	ref := th.host + "/podsup/random:1"
	cfg := image.NewCredentialFile(writeConfig(t, th.host, regUser, regPassword))

	ctx, p := e.puller(image.WithCredentialFile(cfg))
	if _, err := p.Pull(ctx, ref); err == nil || !strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		t.Fatalf("plain HTTP without --insecure-registry: %v", err)
	}

	ctx, p = e.puller(image.WithCredentialFile(cfg), image.WithRegistries(image.Registries{Insecure: []string{th.host}}),
		image.WithProgressInterval(100*time.Millisecond))
	var mu sync.Mutex
	var reports []image.PullProgress
	listen := image.WithProgress(func(pr image.PullProgress) {
		mu.Lock()
		reports = append(reports, pr)
		mu.Unlock()
	})
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Pull(ctx, ref, listen)
		}()
	}
	listed := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !listed; time.Sleep(20 * time.Millisecond) {
		for _, pr := range p.Pulls() {
			if pr.Image == ref && pr.Waiters == 2 && pr.Done > 0 {
				listed = true
				t.Logf("Pulls(): %s %s, %s, %d waiters, credentials from %s", pr.Image, pr.Phase, pr.Bytes(), pr.Waiters, pr.Credentials)
			}
		}
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !listed {
		t.Error("Pulls() never listed the running pull with bytes done")
	}
	if n := th.maxGets(); n != 1 {
		t.Errorf("a blob was downloaded %d times for two waiters, want once", n)
	}
	mu.Lock()
	defer mu.Unlock()
	partial, last := 0, reports[len(reports)-1]
	for _, pr := range reports {
		if pr.Phase == image.PullRunning && pr.Done > 0 && pr.Done < pr.Total {
			partial++
		}
	}
	t.Logf("pull through a 2 MiB/s proxy took %s, %d reports (%d partial), last: %s %s in %s", took.Round(time.Millisecond),
		len(reports), partial, last.Phase, last.Bytes(), last.Elapsed.Round(time.Millisecond))
	if partial == 0 {
		t.Error("no report of a partial download")
	}
	if last.Phase != image.PullDone || last.Done != last.Total || last.Total < 3<<20 {
		t.Errorf("last report %+v", last)
	}
}
