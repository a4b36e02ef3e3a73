package daemon

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podsup/podsup/image"
	"github.com/podsup/podsup/manifest"
)

func TestImageFlags(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "config.json")
	os.WriteFile(creds, []byte(`{"auths":{"reg.io":{"auth":"dTpw"}}}`), 0o600)
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte(`{"auths":{"reg.io":{"auth":"!!"}}}`), 0o600)

	cfg, err := parseRun(t, "--manifests", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := ImageConfig{ProgressInterval: 10 * time.Second, GC: image.DefaultGCPolicy, GCPeriod: 5 * time.Minute}
	if got := cfg.Images; got.MaxParallelPulls != 0 || got.GC != want.GC || got.GCPeriod != want.GCPeriod ||
		got.ProgressInterval != want.ProgressInterval || got.Credentials != "" || len(got.Insecure) != 0 {
		t.Errorf("defaults: %+v", got)
	}

	cfg, err = parseRun(t, "--manifests", dir, "--image-credentials", creds, "--registry-ca", dir, "--insecure-registry", "10.0.0.1:5000",
		"--insecure-registry", "mirror.lan", "--serialize-image-pulls", "--image-preload-dir", dir, "--image-gc-high-threshold", "90",
		"--image-gc-low-threshold", "70", "--image-minimum-gc-age", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if ic := cfg.Images; ic.MaxParallelPulls != 1 || ic.GC.HighThreshold != 90 || ic.GC.LowThreshold != 70 || ic.GC.MinAge != time.Hour ||
		strings.Join(ic.Insecure, ",") != "10.0.0.1:5000,mirror.lan" || ic.PreloadDir != dir || ic.Credentials != creds {
		t.Errorf("flags: %+v", ic)
	}

	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"--image-credentials", filepath.Join(dir, "missing.json")}, "--image-credentials: open"},
		{[]string{"--image-credentials", broken}, `--image-credentials: ` + broken + `: auths["reg.io"].auth: not base64`},
		{[]string{"--registry-ca", creds}, "not a directory"},
		{[]string{"--insecure-registry", "http://reg.io"}, "without scheme or path"},
		{[]string{"--max-parallel-image-pulls", "-1"}, "must be 0 (no limit) or more"},
		{[]string{"--serialize-image-pulls", "--max-parallel-image-pulls", "3"}, "contradicts --serialize-image-pulls"},
		{[]string{"--image-gc-high-threshold", "80", "--image-gc-low-threshold", "85"}, "must be below the high threshold"},
		{[]string{"--image-gc-period", "10ms"}, "must be at least 1s"},
	} {
		_, err := parseRun(t, append([]string{"--manifests", dir}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.err)
		}
	}
}

func podWithImages(name string, images ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	p.Spec.InitContainers = []v1.Container{{Name: "init", Image: images[0]}}
	for _, im := range images[1:] {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: im, Image: im})
	}
	return p
}

// TestDesiredImages: the collector keeps the images of every desired pod,
// init containers included, and collects nothing before every source has
// reported.
func TestDesiredImages(t *testing.T) {
	var d desiredImages
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := make(chan manifest.Delta)
	out := d.track(ctx, in)
	send := func(delta manifest.Delta) {
		in <- delta
		<-out
	}
	send(manifest.Delta{Changes: []manifest.Change{{Kind: manifest.Add, Pod: podWithImages("a", "init:1", "app:1")}}})
	if _, known := d.refs(); known {
		t.Error("known before the sources are ready")
	}
	send(manifest.Delta{SourcesReady: true, Changes: []manifest.Change{
		{Kind: manifest.Add, Pod: podWithImages("b", "init:1", "b:1")},
		{Kind: manifest.Modify, Pod: podWithImages("a", "init:2", "app:2")},
	}})
	send(manifest.Delta{SourcesReady: true, Changes: []manifest.Change{{Kind: manifest.Remove, Pod: podWithImages("b", "init:1", "b:1")}}})
	refs, known := d.refs()
	sort.Strings(refs)
	if !known || strings.Join(refs, " ") != "app:2 init:2" {
		t.Errorf("refs %v, known %v", refs, known)
	}
}
