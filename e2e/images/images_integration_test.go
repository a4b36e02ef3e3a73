//go:build integration

package images

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/internal/testenv"
)

// hostPod is a pod on the host network, so no CNI is involved.
func hostPod(name, body string) string {
	return harness.PodManifest(name, "  hostNetwork: true\n"+body)
}

func dockerConfig(host, user, password string) string {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
}

func pullSecretManifest(name, config string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '%s'\n", name, config)
}

// TestRegistryPulls runs pods from a registry with TLS from a test CA and
// htpasswd authentication: one with the node's config.json, one with an
// imagePullSecret, and one whose secret has a wrong password, which shows
// ErrImagePull, then ImagePullBackOff with the registry's reason. No
// password appears in podsup's log or API.
func TestRegistryPulls(t *testing.T) {
	t.Parallel()
	const password = "e2e-s3cret-password"
	e := newEnv(t)
	reg := testenv.StartRegistry(t, map[string]string{"alice": password})
	bb, err := e.Client.GetImage(e.Ctx, testenv.BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"podsup/busybox:1", "other/busybox:1", "other/busybox:2"} {
		reg.Push(t, e.Ctx, e.Client, bb, reg.Host+"/"+repo, "alice", password)
	}
	// The node's credentials cover the podsup/ repositories only.
	creds := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(creds, []byte(dockerConfig(reg.Host+"/podsup", "alice", password)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Write("regcred.yaml", pullSecretManifest("regcred", dockerConfig(reg.Host, "alice", password)))
	e.Write("badcred.yaml", pullSecretManifest("badcred", dockerConfig(reg.Host, "alice", "wrong-password")))
	sleep := fmt.Sprintf("    command: [sh, -c, %q]\n", harness.IdleCmd)
	e.Write("node.yaml", hostPod("node", "  containers:\n  - name: main\n    image: "+reg.Host+"/podsup/busybox:1\n"+sleep))
	e.Write("secret.yaml", hostPod("secret", "  imagePullSecrets: [{name: regcred}, {name: missing}]\n  containers:\n  - name: main\n    image: "+reg.Host+"/other/busybox:1\n"+sleep))
	e.Write("denied.yaml", hostPod("denied", "  imagePullSecrets: [{name: badcred}]\n  containers:\n  - name: main\n    image: "+reg.Host+"/other/busybox:2\n"+sleep))
	start := time.Now()
	e.Start("--registry-ca", reg.CADir, "--image-credentials", creds, "--restart-backoff-initial", "2s")

	running := func(p v1.Pod) bool { return harness.ContainerStatus(p, "main").State.Running != nil }
	e.WaitPod("node", "running from the registry with config.json credentials", running)
	e.WaitPod("secret", "running from the registry with a pull secret", running)
	t.Logf("both pods ran %s after podsup started", time.Since(start).Round(time.Millisecond))

	var sawErrImagePull bool
	p := e.WaitPod("denied", "in ImagePullBackOff after ErrImagePull", func(p v1.Pod) bool {
		reason, _ := harness.Waiting(p, "main")
		sawErrImagePull = sawErrImagePull || reason == "ErrImagePull"
		return sawErrImagePull && reason == "ImagePullBackOff"
	})
	_, msg := harness.Waiting(p, "main")
	t.Logf("denied: ImagePullBackOff: %s", msg)
	for _, want := range []string{"with credentials from secret default/badcred", "401 Unauthorized", "the registry says: UNAUTHORIZED: authentication required"} {
		if !strings.Contains(msg, want) {
			t.Errorf("status message lacks %q", want)
		}
	}

	e.Stop()
	logs, _ := os.ReadFile(e.ProcLog.Name())
	pods, _ := exec.Command(harness.Binary(), "pods", "--server", "http://"+e.ReadOnly, "-o", "json").Output()
	for _, want := range []string{`reason=Pulling pod=default/node-node1`, `reason=Pulled pod=default/node-node1`,
		`reason=FailedToRetrieveImagePullSecret pod=default/secret-node1`, `Unable to retrieve some image pull secrets (missing)`} {
		if !bytes.Contains(logs, []byte(want)) {
			t.Errorf("podsup's log lacks %q", want)
		}
	}
	for _, secret := range []string{password, "wrong-password", base64.StdEncoding.EncodeToString([]byte("alice:" + password)),
		base64.StdEncoding.EncodeToString([]byte("alice:wrong-password"))} {
		if bytes.Contains(logs, []byte(secret)) {
			t.Errorf("podsup's log contains a credential (%q)", secret[:4])
		}
		if bytes.Contains(pods, []byte(secret)) {
			t.Errorf("the API shows a credential (%q)", secret[:4])
		}
	}
}

// podsupImage runs `podsup image ...` against the test's namespace, the
// namespace given by environment variable as `podsup run` takes it.
func (e *env) podsupImage(args ...string) (string, error) {
	cmd := exec.Command(harness.Binary(), append([]string{"image"}, args...)...)
	cmd.Env = append(os.Environ(), "PODSUP_CONTAINERD_ADDRESS="+e.Address, "PODSUP_CONTAINERD_NAMESPACE="+e.NS)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// writeArchive writes the busybox test image under another name as a
// gzip'ed OCI archive.
func writeArchive(t *testing.T, path, ref string) {
	b, err := testenv.Busybox()
	if err != nil {
		testenv.Unavailable(t, "busybox test image: %v", err)
	}
	b.Ref = ref
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := b.WriteArchive(zw); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	tmp := path + ".part"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestOfflineImages: with no registry anywhere, `podsup image import` loads
// an archive and a pod runs from it; `podsup image ls` shows it used;
// `podsup image rm` keeps an image in use and removes another; an archive
// dropped into --image-preload-dir while podsup runs starts the pod that
// was waiting for it.
func TestOfflineImages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	writeArchive(t, filepath.Join(dir, "offline.tar.gz"), "podsup.test/offline:1")
	writeArchive(t, filepath.Join(dir, "unused.tar.gz"), "podsup.test/unused:1")
	start := time.Now()
	out, err := e.podsupImage("import", filepath.Join(dir, "offline.tar.gz"), filepath.Join(dir, "unused.tar.gz"))
	if err != nil || !strings.Contains(out, "imported podsup.test/offline:1") || !strings.Contains(out, "imported podsup.test/unused:1") {
		t.Fatalf("podsup image import: %v\n%s", err, out)
	}
	t.Logf("podsup image import of two archives took %s:\n%s", time.Since(start).Round(time.Millisecond), out)

	preload := filepath.Join(t.TempDir(), "preload")
	sleep := fmt.Sprintf("    command: [sh, -c, %q]\n", harness.IdleCmd)
	e.Write("offline.yaml", hostPod("offline", "  containers:\n  - name: main\n    image: podsup.test/offline:1\n    imagePullPolicy: Never\n"+sleep))
	e.Write("late.yaml", hostPod("late", "  containers:\n  - name: main\n    image: podsup.test/preloaded:1\n    imagePullPolicy: Never\n"+sleep))
	e.Start("--image-preload-dir", preload, "--restart-backoff-initial", "1s", "--restart-backoff-max", "2s")
	running := func(p v1.Pod) bool { return harness.ContainerStatus(p, "main").State.Running != nil }
	e.WaitPod("offline", "running from the imported image", running)
	e.WaitPod("late", "waiting with ErrImageNeverPull", func(p v1.Pod) bool {
		reason, _ := harness.Waiting(p, "main")
		return reason == "ErrImageNeverPull"
	})

	out, err = e.podsupImage("ls")
	if err != nil {
		t.Fatalf("podsup image ls: %v\n%s", err, out)
	}
	t.Logf("podsup image ls:\n%s", out)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "podsup.test/offline:1" && (f[len(f)-1] != "yes" || strings.Contains(line, "never")):
			t.Errorf("the pod's image is not shown used: %s", line)
		case f[0] == "podsup.test/unused:1" && (f[len(f)-1] != "no" || !strings.Contains(line, "never")):
			t.Errorf("the unused image is shown used: %s", line)
		}
	}
	if out, err := e.podsupImage("rm", "podsup.test/offline:1"); err == nil || !strings.Contains(out, "is used by 1 container(s)") {
		t.Errorf("podsup image rm of an image in use: %v\n%s", err, out)
	}
	if out, err := e.podsupImage("rm", "podsup.test/unused:1"); err != nil || !strings.Contains(out, "removed podsup.test/unused:1") {
		t.Errorf("podsup image rm: %v\n%s", err, out)
	}
	if out, _ := e.podsupImage("ls", "-q"); strings.Contains(out, "unused") || !strings.Contains(out, "podsup.test/offline:1") {
		t.Errorf("after rm:\n%s", out)
	}

	dropped := time.Now()
	writeArchive(t, filepath.Join(preload, "preloaded.tar.gz"), "podsup.test/preloaded:1")
	e.WaitPod("late", "running from the preloaded archive", running)
	t.Logf("the waiting pod ran %s after its archive was dropped into the preload directory", time.Since(dropped).Round(time.Millisecond))
}

// randomImage is an image of one layer of random bytes, with busybox if
// runnable is set.
func randomImage(t *testing.T, ref string, size int, runnable bool) *image.Build {
	data := make([]byte, size)
	rand.Read(data)
	b := &image.Build{Ref: ref}
	if runnable {
		bb, err := testenv.Busybox()
		if err != nil {
			testenv.Unavailable(t, "busybox test image: %v", err)
		}
		b = bb
		b.Ref = ref
	}
	b.Files = append(b.Files, image.File{Path: "/random", Mode: fs.FileMode(0o644), Data: data})
	return b
}

// TestImageGC fills a private containerd's 96 MiB image filesystem past the
// high threshold: podsup removes the image no pod names and keeps those of
// a running pod, of a failed pod, and the pause image.
func TestImageGC(t *testing.T) {
	t.Parallel()
	ctrd := testenv.StartSmallContainerd(t, 96<<20)
	e := newEnvWith(t, ctrd.Address, ctrd.Client())
	for _, b := range []*image.Build{
		randomImage(t, "podsup.test/unused:1", 16<<20, false),
		randomImage(t, "podsup.test/failed:1", 16<<20, true),
	} {
		if _, err := b.Import(e.Ctx, e.Client, testenv.Snapshotter); err != nil {
			t.Fatal(err)
		}
	}
	before, err := image.Statfs(ctrd.Root())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image filesystem: %d%% of %s in use", before.Percent(), image.HumanBytes(before.Capacity))
	if before.Percent() < 65 {
		t.Fatalf("the images fill only %d%%", before.Percent())
	}
	e.Write("runner.yaml", hostPod("runner", "  containers:\n  - name: main\n    image: "+testenv.BusyboxRef+
		fmt.Sprintf("\n    command: [sh, -c, %q]\n", harness.IdleCmd)))
	e.Write("failed.yaml", hostPod("failed", "  restartPolicy: Never\n  containers:\n  - name: main\n    image: podsup.test/failed:1\n    command: [sh, -c, 'exit 3']\n"))
	e.Start("--image-gc-high-threshold", "60", "--image-gc-low-threshold", "50", "--image-minimum-gc-age", "1s", "--image-gc-period", "1s")
	e.WaitPod("runner", "running", func(p v1.Pod) bool { return harness.ContainerStatus(p, "main").State.Running != nil })
	e.WaitPod("failed", "failed", func(p v1.Pod) bool { return p.Status.Phase == v1.PodFailed })

	harness.WaitFor(t, "the unused image collected", func() bool {
		_, err := e.Client.GetImage(e.Ctx, "podsup.test/unused:1")
		return err != nil
	})
	// containerd frees the image's content and snapshots in its own
	// garbage collection, after the image is gone.
	var after image.FSUsage
	harness.WaitFor(t, "usage at most the low threshold 50% after collection", func() bool {
		after, _ = image.Statfs(ctrd.Root())
		return after.Percent() <= 50
	})
	t.Logf("image filesystem after collection: %d%%", after.Percent())
	list, err := e.Client.ImageService().List(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, im := range list {
		kept[strings.SplitN(im.Name, ":", 2)[0]] = true
	}
	for _, want := range []string{"podsup.test/busybox", "podsup.test/failed", image.PauseRepo} {
		if !kept[want] {
			t.Errorf("%s was removed", want)
		}
	}
	e.Stop()
	logs, _ := os.ReadFile(e.ProcLog.Name())
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, "image garbage collection") || strings.Contains(line, "image filesystem") {
			t.Log(line)
		}
	}
	if n := bytes.Count(logs, []byte("image garbage collection removed an image")); n != 1 {
		t.Errorf("%d images removed, want 1", n)
	}
}
