package client

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestManifestName(t *testing.T) {
	tests := []struct {
		file, want string
		wantErr    bool
	}{
		{file: "web.yaml", want: "web"},
		{file: "/etc/podsup/Web_Server.YML", want: "web-server"},
		{file: "./my.app.json", want: "my-app"},
		{file: "db", want: "db"},
		{file: "--weird--.yaml", want: "weird"},
		{file: strings.Repeat("a", 70) + ".yaml", want: strings.Repeat("a", 63)},
		{file: "___.yaml", wantErr: true},
		{file: "-", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ManifestName(tc.file)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q (error: %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

const webManifest = `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: main, image: busybox}
`

func TestApplyAndDelete(t *testing.T) {
	fx := newFixture(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	web := write("Web.yaml", webManifest)
	bad := write("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers:\n  - {name: main}\n")

	steps := []struct {
		name       string
		args       []string
		wantOut    string
		wantErr    []string
		wantCode   int
		wantStored []string
	}{
		{name: "apply", args: []string{"apply", "-f", web}, wantOut: "manifest web applied: pod default/web-node1\n", wantStored: []string{"web"}},
		{name: "apply again", args: []string{"apply", "-f", web}, wantOut: "manifest web applied: pod default/web-node1\n", wantStored: []string{"web"}},
		{name: "apply under a name", args: []string{"apply", "-f", web, "--name", "other"},
			wantErr: []string{"already pushed as manifest \"web\""}, wantCode: 1, wantStored: []string{"web"}},
		{name: "invalid", args: []string{"apply", "-f", bad}, wantErr: []string{bad, "metadata.name", "image"}, wantCode: 1, wantStored: []string{"web"}},
		{name: "bad --name", args: []string{"apply", "-f", web, "--name", "Not_A_Label"}, wantErr: []string{"--name"}, wantCode: 2, wantStored: []string{"web"}},
		{name: "stdin without a name", args: []string{"apply", "-f", "-"}, wantErr: []string{"--name"}, wantCode: 2, wantStored: []string{"web"}},
		{name: "no file", args: []string{"apply"}, wantErr: []string{"-f FILE"}, wantCode: 2, wantStored: []string{"web"}},
		{name: "delete unknown", args: []string{"delete", "nope"}, wantErr: []string{`manifest "nope" not found; pushed manifests: web`}, wantCode: 1, wantStored: []string{"web"}},
		{name: "delete unknown, ignored", args: []string{"delete", "nope", "--ignore-not-found"}, wantStored: []string{"web"}},
		{name: "delete by file", args: []string{"delete", "-f", web}, wantOut: "manifest web deleted\n"},
		{name: "delete again", args: []string{"delete", "web"}, wantErr: []string{"no manifest is pushed"}, wantCode: 1},
		{name: "delete nothing", args: []string{"delete"}, wantErr: []string{"podsup delete NAME"}, wantCode: 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := fx.run(st.args...)
			if r.code() != st.wantCode {
				t.Fatalf("exit %d (%v), want %d", r.code(), r.err, st.wantCode)
			}
			for _, want := range st.wantErr {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("error %q does not say %q", r.err, want)
				}
			}
			if r.stdout != st.wantOut {
				t.Errorf("output %q, want %q", r.stdout, st.wantOut)
			}
			if got := fx.push.Names(); !slices.Equal(got, st.wantStored) && len(got)+len(st.wantStored) > 0 {
				t.Errorf("stored %q, want %q", got, st.wantStored)
			}
		})
	}
}

func TestApplyWarnings(t *testing.T) {
	fx := newFixture(t)
	path := filepath.Join(t.TempDir(), "web.yaml")
	// An unknown field is a warning, not an error.
	os.WriteFile(path, []byte(webManifest+"  nonsense: true\n"), 0o644)
	r := fx.run("apply", "-f", path)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.HasPrefix(r.stderr, "Warning: ") {
		t.Errorf("stderr %q, want the manifest's warnings", r.stderr)
	}
}

func TestReadManifest(t *testing.T) {
	data, err := readManifest("-", strings.NewReader(webManifest))
	if err != nil || string(data) != webManifest {
		t.Errorf("stdin: got %q, %v", data, err)
	}
	if _, err := readManifest("-", strings.NewReader(strings.Repeat("x", maxApplyBytes+1))); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a manifest too large: %v", err)
	}
	if _, err := readManifest(filepath.Join(t.TempDir(), "none.yaml"), nil); err == nil {
		t.Error("a missing file: no error")
	}
}
