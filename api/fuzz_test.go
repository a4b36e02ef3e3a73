package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podsup/podsup/internal/hostile"
	"github.com/podsup/podsup/manifest"
)

// FuzzPutManifest pushes arbitrary bodies under arbitrary names. The API
// must answer every request with a JSON status and never a 500, store a
// manifest exactly as sent when it accepts it, and nothing when it does
// not; nothing but <valid name>.yaml is ever written.
func FuzzPutManifest(f *testing.F) {
	good := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, image: busybox}]}\n"
	f.Add("web", []byte(good))
	for _, name := range []string{"..", "../etc", "a/b", "UPPER", "a.b", "", strings.Repeat("a", 64)} {
		f.Add(name, []byte(good))
	}
	for _, in := range hostile.Light(manifest.MaxManifestBytes) {
		if len(in.Data) <= 64<<10 {
			f.Add(in.Name, in.Data)
		}
	}
	d, dir := testDeps(f), f.TempDir()
	push, err := manifest.NewPushSource(dir, manifest.Static{NodeName: "node1", Source: manifest.SourceAPI}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	d.Push = push
	h := FullHandler(d)
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		req := httptest.NewRequest("PUT", "/manifests/x", strings.NewReader(string(body)))
		req.URL = &url.URL{Path: "/manifests/" + name}
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		var status map[string]any
		if err := json.Unmarshal(rr.Body.Bytes(), &status); err != nil {
			t.Fatalf("%d answer is not JSON: %q", rr.Code, rr.Body)
		}
		if rr.Code >= 500 {
			t.Fatalf("%d: %v", rr.Code, status)
		}
		entries, _ := os.ReadDir(dir)
		if rr.Code != http.StatusOK {
			if len(entries) > 0 {
				t.Fatalf("refused with %d, yet %s was stored", rr.Code, entries[0].Name())
			}
			return
		}
		if manifest.CheckPushName(name) != nil {
			t.Fatalf("accepted the name %q", name)
		}
		stored, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
		if err != nil || string(stored) != string(body) || len(entries) != 1 {
			t.Fatalf("accepted, but stored %d files and %q (%v)", len(entries), stored, err)
		}
		if err := d.Push.Delete(name); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzReadTokenFile reads arbitrary token files: an error names the file,
// and every token read has a value and a user.
func FuzzReadTokenFile(f *testing.F) {
	f.Add([]byte("secret,admin,1\n"))
	f.Add([]byte("# comment\nt1,alice,1,\"system:masters,dev\"\nt2,bob,2\n"))
	f.Add([]byte("\"unterminated,a,1\n"))
	f.Add([]byte(",,,\n\n\r\n"))
	f.Add([]byte("a,b\n"))
	for _, in := range hostile.Light(manifest.MaxManifestBytes) {
		if len(in.Data) <= 64<<10 {
			f.Add(in.Data)
		}
	}
	path := filepath.Join(f.TempDir(), "tokens.csv")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tokens, err := ReadTokenFile(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, tk := range tokens {
			if len(tk.token) == 0 || tk.user.Name == "" {
				t.Fatalf("token %q for user %q", tk.token, tk.user.Name)
			}
		}
	})
}
