package image

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseDockerConfig(t *testing.T) {
	tests := []struct {
		name     string
		json     string
		ref      string
		want     []Credential
		warnings []string // substrings, one per warning
		err      string
	}{
		{
			name: "auth field",
			json: `{"auths":{"reg.example:5000":{"auth":"` + b64("alice:s3cret:with:colons") + `"}}}`,
			ref:  "reg.example:5000/app:1",
			want: []Credential{{Username: "alice", Secret: "s3cret:with:colons", Source: "cfg"}},
		},
		{
			name: "username and password fields",
			json: `{"auths":{"reg.example":{"username":"bob","password":"hunter22"}}}`,
			ref:  "reg.example/app",
			want: []Credential{{Username: "bob", Secret: "hunter22", Source: "cfg"}},
		},
		{
			name: "identity token",
			json: `{"auths":{"reg.example":{"auth":"` + b64("<token>:") + `","identitytoken":"refresh-me"}}}`,
			ref:  "reg.example/app",
			want: []Credential{{Username: "", Secret: "refresh-me", Source: "cfg"}},
		},
		{
			name: "Docker Hub's legacy URL key",
			json: `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("hubuser:hubpass") + `"}}}`,
			ref:  "busybox",
			want: []Credential{{Username: "hubuser", Secret: "hubpass", Source: "cfg"}},
		},
		{
			name:     "credential helpers are not supported, and said so",
			json:     `{"auths":{},"credHelpers":{"gcr.io":"gcloud"},"credsStore":"desktop"}`,
			ref:      "gcr.io/x/y",
			warnings: []string{`credHelpers["gcr.io"]: credential helpers are not supported`, `credsStore "desktop": credential stores are not supported`},
		},
		{
			name:     "registry token",
			json:     `{"auths":{"reg.example":{"registrytoken":"bearer-xyz"}}}`,
			ref:      "reg.example/app",
			warnings: []string{"registry tokens are not supported"},
		},
		{
			name:     "empty entry",
			json:     `{"auths":{"reg.example":{}}}`,
			ref:      "reg.example/app",
			warnings: []string{"no auth, password or identitytoken: skipped"},
		},
		{
			name: "auth not base64",
			json: `{"auths":{"reg.example":{"auth":"!!not-b64-s3cret!!"}}}`,
			err:  `cfg: auths["reg.example"].auth: not base64 of user:password`,
		},
		{
			name: "auth without colon",
			json: `{"auths":{"reg.example":{"auth":"` + b64("nocolons3cret") + `"}}}`,
			err:  `cfg: auths["reg.example"].auth: not base64 of user:password (no colon)`,
		},
		{
			name: "broken JSON",
			json: `{"auths":{"reg.example":{"password":"s3cret"`,
			err:  "cfg: not a docker config.json: invalid JSON at byte 44",
		},
		{
			name: "wrong type",
			json: `{"auths":{"reg.example":{"password":42}}}`,
			err:  "cfg: not a docker config.json: auths.password: want string",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, warnings, err := ParseDockerConfig([]byte(tt.json), "cfg", false)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				for _, secret := range []string{"s3cret", "not-b64"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks %q: %v", secret, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != len(tt.warnings) {
				t.Fatalf("warnings %q, want %d", warnings, len(tt.warnings))
			}
			for i, w := range tt.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %q, want it to contain %q", warnings[i], w)
				}
			}
			got := k.Lookup(tt.ref)
			if len(got) != len(tt.want) {
				t.Fatalf("Lookup(%s) = %d credentials, want %d", tt.ref, len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("credential %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestLegacyDockercfg(t *testing.T) {
	k, _, err := ParseDockerConfig([]byte(`{"reg.example":{"auth":"`+b64("u:p4ss")+`"}}`), "old", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Lookup("reg.example/a"); len(got) != 1 || got[0].Secret != "p4ss" {
		t.Errorf("legacy lookup: %+v", got)
	}
}

// TestKeyringLookup matches keys to images as the kubelet does: the host
// with its port exactly, "*" for one label, a path as a prefix of whole
// components, and the most specific key first.
func TestKeyringLookup(t *testing.T) {
	cfg := `{"auths":{
		"registry.example.com:5000": {"auth":"` + b64("port:p") + `"},
		"registry.example.com": {"auth":"` + b64("noport:p") + `"},
		"*.example.org": {"auth":"` + b64("wild:p") + `"},
		"reg.io": {"auth":"` + b64("host:p") + `"},
		"reg.io/team": {"auth":"` + b64("team:p") + `"},
		"reg.io/team/app": {"auth":"` + b64("app:p") + `"},
		"docker.io": {"auth":"` + b64("hub:p") + `"}
	}}`
	k, _, err := ParseDockerConfig([]byte(cfg), "cfg", false)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref  string
		want []string // user names, in order
	}{
		{"registry.example.com:5000/a/b:1", []string{"port"}},
		{"registry.example.com/a", []string{"noport"}},
		{"registry.example.com:5001/a", nil},
		{"eu.example.org/x", []string{"wild"}},
		{"a.b.example.org/x", nil},
		{"example.org/x", nil},
		{"reg.io/team/app:2", []string{"app", "team", "host"}},
		{"reg.io/team/other", []string{"team", "host"}},
		{"reg.io/teamx/app", []string{"host"}},
		{"busybox", []string{"hub"}},
		{"docker.io/library/busybox:latest", []string{"hub"}},
		{"quay.io/x", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, c := range k.Lookup(tt.ref) {
			got = append(got, c.Username)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("Lookup(%s) = %v, want %v", tt.ref, got, tt.want)
		}
	}
}

func TestSecretKeyring(t *testing.T) {
	secret := func(name string, typ v1.SecretType, data map[string][]byte) *v1.Secret {
		return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Type: typ, Data: data}
	}
	secrets := []*v1.Secret{
		secret("json", v1.SecretTypeDockerConfigJson, map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{"reg.io":{"auth":"` + b64("fromjson:pw1") + `"}}}`)}),
		secret("cfg", v1.SecretTypeDockercfg, map[string][]byte{v1.DockerConfigKey: []byte(`{"reg.io/team":{"auth":"` + b64("fromcfg:pw2") + `"}}`)}),
		secret("opaque", v1.SecretTypeOpaque, map[string][]byte{"password": []byte("opaque-value")}),
		secret("broken", v1.SecretTypeDockerConfigJson, map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths": "broken-value`)}),
		nil,
	}
	k, problems := SecretKeyring(secrets)
	got := k.Lookup("reg.io/team/app")
	if len(got) != 2 || got[0].Username != "fromcfg" || got[1].Username != "fromjson" {
		t.Fatalf("lookup: %+v", got)
	}
	if got[0].Source != "secret default/cfg" || got[1].Source != "secret default/json" {
		t.Errorf("sources: %q, %q", got[0].Source, got[1].Source)
	}
	want := []string{
		`secret default/opaque: type "Opaque": an image pull secret must be of type kubernetes.io/dockerconfigjson`,
		"secret default/broken: not a docker config.json: invalid JSON at byte 23",
	}
	if strings.Join(problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
	for _, p := range problems {
		if strings.Contains(p, "value") {
			t.Errorf("problem leaks a value: %s", p)
		}
	}
}

func TestRedact(t *testing.T) {
	creds := []Credential{{Username: "alice", Secret: "s3cret-pw"}}
	msg := "failed: s3cret-pw in body; Authorization: Basic " + b64("alice:s3cret-pw")
	got := redact(msg, creds)
	if strings.Contains(got, "s3cret") || strings.Contains(got, b64("alice:s3cret-pw")) {
		t.Errorf("redact left a secret: %s", got)
	}
	if got != "failed: [redacted] in body; Authorization: Basic [redacted]" {
		t.Errorf("redact: %s", got)
	}
}

// TestCredentialFile reads the first file that exists and reads it again
// when it changes, so new credentials apply without a restart.
func TestCredentialFile(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	f := NewCredentialFile(first, second)
	if k, _, _, err := f.Keyring(); err != nil || k.Len() != 0 {
		t.Fatalf("no file: %v %v", k, err)
	}
	write := func(path, user string) {
		if err := os.WriteFile(path, []byte(`{"auths":{"reg.io":{"auth":"`+b64(user+":pw")+`"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(second, "second")
	k, _, changed, err := f.Keyring()
	if err != nil || !changed || k.Lookup("reg.io/x")[0].Username != "second" || f.Path() != second {
		t.Fatalf("second: %v %v %v", k, changed, err)
	}
	if _, _, changed, _ := f.Keyring(); changed {
		t.Error("unchanged file read again")
	}
	write(first, "first-user")
	k, _, changed, _ = f.Keyring()
	if !changed || k.Lookup("reg.io/x")[0].Username != "first-user" {
		t.Errorf("first file not preferred: %v", k.Lookup("reg.io/x"))
	}
	os.Remove(first)
	os.Remove(second)
	if k, _, changed, _ := f.Keyring(); !changed || k.Len() != 0 {
		t.Errorf("removed files still give credentials")
	}
}
