package manifest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPushSource(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := Static{NodeName: "node1", Source: SourceAPI}
	p, err := NewPushSource(dir, st, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Put("web", []byte(podYAML("web", "web:1"))); err != nil {
		t.Fatal(err)
	}
	_, err = p.Put("broken", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a}]}\n"))
	if err == nil || !strings.Contains(err.Error(), "api:broken: pod x: spec.containers[0].image: required") {
		t.Errorf("invalid push: %v", err)
	}
	if _, err := p.Put("other", []byte(podYAML("web", "web:2"))); err == nil || !strings.Contains(err.Error(), `already pushed as manifest "web"`) {
		t.Errorf("duplicate pod in another manifest: %v", err)
	}
	for _, bad := range []string{"../etc", "a/b", "UPPER", ""} {
		if _, err := p.Put(bad, []byte(podYAML("x", "x:1"))); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "broken.yaml")); !os.IsNotExist(err) {
		t.Error("an invalid manifest was stored")
	}

	// A restart finds what was pushed.
	again, err := NewPushSource(dir, st, log)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan Update, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); again.Run(ctx, out) }()
	defer func() { cancel(); <-done }()
	u := recv(t, out)
	if len(u.Pods) != 1 || u.Pods[0].Name != "web-node1" || u.Pods[0].Annotations[AnnotationSource] != SourceAPI {
		t.Fatalf("after a restart: %+v", u.Pods)
	}
	if err := again.Delete("web"); err != nil {
		t.Fatal(err)
	}
	if u := recv(t, out); len(u.Pods) != 0 {
		t.Errorf("after delete: %d pods", len(u.Pods))
	}
	if err := again.Delete("web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}
