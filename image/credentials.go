package image

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
)

// Credential is a user name and secret for a registry, and where they came
// from. Only Source may ever be shown: in logs, events, errors and the API.
type Credential struct {
	Username string
	// Secret is a password, or an identity token (a refresh token for the
	// registry's token service) when Username is empty.
	Secret string
	// Source names where the credential came from, such as
	// "/root/.docker/config.json" or "secret default/regcred".
	Source string
}

// Keyring maps registries, or repositories within them, to credentials, as
// the auths of a docker config.json do.
type Keyring struct {
	entries []keyringEntry // most specific first
}

type keyringEntry struct {
	host, path string // host with port if any; path prefix, possibly empty
	cred       Credential
}

// dockerConfig is the part of a docker config.json podsup reads.
type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredHelpers map[string]string     `json:"credHelpers"`
	CredsStore  string                `json:"credsStore"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// ParseDockerConfig reads a docker config.json ({"auths": {...}}) or, when
// legacy is set, a .dockercfg (the auths map alone). source names it in
// messages. Credential helpers (credHelpers, credsStore) and registry tokens
// are not supported: podsup runs no helper programs. Each is reported as a
// warning and skipped; the rest of the file is used. No message includes a
// secret.
func ParseDockerConfig(data []byte, source string, legacy bool) (*Keyring, []string, error) {
	var cfg dockerConfig
	var err error
	if legacy {
		err = json.Unmarshal(data, &cfg.Auths)
	} else {
		err = json.Unmarshal(data, &cfg)
	}
	if err != nil {
		// The JSON error may quote part of the file: say only where.
		return nil, nil, fmt.Errorf("%s: not a docker config.json: %s", source, jsonErrorPlace(err))
	}
	var warnings []string
	for _, host := range sortedKeys(cfg.CredHelpers) {
		warnings = append(warnings, fmt.Sprintf("%s: credHelpers[%q]: credential helpers are not supported; podsup runs no helper programs: put the credentials in auths", source, host))
	}
	if cfg.CredsStore != "" {
		warnings = append(warnings, fmt.Sprintf("%s: credsStore %q: credential stores are not supported; podsup runs no helper programs: put the credentials in auths", source, cfg.CredsStore))
	}
	k := &Keyring{}
	for _, key := range sortedKeys(cfg.Auths) {
		a := cfg.Auths[key]
		field := fmt.Sprintf("%s: auths[%q]", source, key)
		host, p, err := parseRegistryKey(key)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", field, err)
		}
		cred := Credential{Username: a.Username, Secret: a.Password, Source: source}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, nil, fmt.Errorf("%s.auth: not base64 of user:password", field)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, nil, fmt.Errorf("%s.auth: not base64 of user:password (no colon)", field)
			}
			cred.Username, cred.Secret = user, strings.TrimSuffix(pass, "\x00")
		}
		if a.IdentityToken != "" {
			cred.Username, cred.Secret = "", a.IdentityToken
		}
		if cred.Secret == "" {
			if a.RegistryToken != "" {
				warnings = append(warnings, fmt.Sprintf("%s.registrytoken: registry tokens are not supported: use auth or identitytoken", field))
			} else {
				warnings = append(warnings, fmt.Sprintf("%s: no auth, password or identitytoken: skipped", field))
			}
			continue
		}
		k.entries = append(k.entries, keyringEntry{host: host, path: p, cred: cred})
	}
	k.sort()
	return k, warnings, nil
}

// jsonErrorPlace describes a JSON error by its offset or field, never by
// the content around it.
func jsonErrorPlace(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("invalid JSON at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("%s: want %s", e.Field, e.Type)
	}
	return "invalid JSON"
}

// parseRegistryKey splits an auths key ("registry:5000",
// "https://index.docker.io/v1/", "*.example.com/team") into host and path
// prefix. Docker Hub's many names become docker.io.
func parseRegistryKey(key string) (host, p string, err error) {
	s := key
	if i := strings.Index(s, "://"); i >= 0 {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return "", "", fmt.Errorf("not a registry host or URL")
		}
		s = u.Host + u.Path
	}
	host, p, _ = strings.Cut(s, "/")
	if host == "" {
		return "", "", fmt.Errorf("not a registry host or URL")
	}
	host = canonicalHost(strings.ToLower(host))
	p = strings.Trim(p, "/")
	// The legacy Docker Hub URL ends in /v1/: a version, not a repository.
	if host == dockerHub && (p == "v1" || p == "v2") {
		p = ""
	}
	return host, p, nil
}

// dockerHub is Docker Hub as references name it.
const dockerHub = "docker.io"

// canonicalHost maps Docker Hub's other names to docker.io.
func canonicalHost(h string) string {
	switch h {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHub
	}
	return h
}

// sort puts the most specific entries first: longer paths, then hosts
// without wildcards, then by name, so the order never depends on a map.
func (k *Keyring) sort() {
	sort.SliceStable(k.entries, func(i, j int) bool {
		a, b := k.entries[i], k.entries[j]
		if len(a.path) != len(b.path) {
			return len(a.path) > len(b.path)
		}
		if wa, wb := strings.Contains(a.host, "*"), strings.Contains(b.host, "*"); wa != wb {
			return !wa
		}
		return a.host+"/"+a.path < b.host+"/"+b.path
	})
}

// Len is the number of credentials in the keyring.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}

// Lookup returns the credentials that apply to an image reference, most
// specific first, as the kubelet matches them: the host must match (a
// label "*" matches one label of a host name; ports must be equal) and the
// key's path must be a prefix of the repository's path.
func (k *Keyring) Lookup(ref string) []Credential {
	if k == nil {
		return nil
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil
	}
	host, repo := reference.Domain(named), reference.Path(named)
	var out []Credential
	for _, e := range k.entries {
		if hostMatches(e.host, host) && (e.path == "" || repo == e.path || strings.HasPrefix(repo, e.path+"/")) {
			out = append(out, e.cred)
		}
	}
	return out
}

// hostMatches matches a host with optional "*" labels against a host.
func hostMatches(pattern, host string) bool {
	pHost, pPort := splitPort(pattern)
	hHost, hPort := splitPort(host)
	if pPort != hPort {
		return false
	}
	pl, hl := strings.Split(pHost, "."), strings.Split(hHost, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		if ok, err := path.Match(pl[i], hl[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

func splitPort(h string) (string, string) {
	if i := strings.LastIndex(h, ":"); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i], h[i+1:]
	}
	return h, ""
}

// SecretKeyring reads the registry credentials of pull secrets: Secrets of
// type kubernetes.io/dockerconfigjson (or the legacy
// kubernetes.io/dockercfg). Secrets of another type, and broken ones, are
// skipped with a problem naming the secret and the field, never a value.
func SecretKeyring(secrets []*v1.Secret) (*Keyring, []string) {
	k := &Keyring{}
	var problems []string
	for _, s := range secrets {
		if s == nil {
			continue
		}
		name := fmt.Sprintf("secret %s/%s", s.Namespace, s.Name)
		var data []byte
		legacy := false
		switch s.Type {
		case v1.SecretTypeDockerConfigJson:
			data = s.Data[v1.DockerConfigJsonKey]
		case v1.SecretTypeDockercfg:
			data, legacy = s.Data[v1.DockerConfigKey], true
		default:
			problems = append(problems, fmt.Sprintf("%s: type %q: an image pull secret must be of type %s", name, s.Type, v1.SecretTypeDockerConfigJson))
			continue
		}
		sk, warnings, err := ParseDockerConfig(data, name, legacy)
		problems = append(problems, warnings...)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		k.entries = append(k.entries, sk.entries...)
	}
	k.sort()
	return k, problems
}

// CredentialFile is a docker config.json that is read again when it
// changes, so new credentials apply without a restart.
type CredentialFile struct {
	paths []string // the first that exists is used

	mu       sync.Mutex
	path     string
	modTime  time.Time
	size     int64
	keyring  *Keyring
	warnings []string
	err      error
}

// NewCredentialFile reads credentials from the first of paths that exists;
// none existing means no credentials.
func NewCredentialFile(paths ...string) *CredentialFile {
	return &CredentialFile{paths: paths}
}

// DefaultCredentialPaths are where podsup looks for a docker config.json
// when --image-credentials is not set: its root directory, then the
// user's docker configuration.
func DefaultCredentialPaths(rootDir string) []string {
	paths := []string{filepath.Join(rootDir, "config.json")}
	if home, err := os.UserHomeDir(); err == nil {
		paths = append(paths, filepath.Join(home, ".docker", "config.json"))
	}
	return paths
}

// Keyring returns the file's credentials, reading it again if it changed.
// changed reports a new read, so the caller logs warnings once.
func (f *CredentialFile) Keyring() (k *Keyring, warnings []string, changed bool, err error) {
	if f == nil {
		return nil, nil, false, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.paths {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		if p == f.path && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
			return f.keyring, f.warnings, false, f.err
		}
		f.path, f.modTime, f.size = p, st.ModTime(), st.Size()
		data, err := os.ReadFile(p)
		if err == nil {
			f.keyring, f.warnings, f.err = ParseDockerConfig(data, p, false)
		} else {
			f.keyring, f.warnings, f.err = nil, nil, err
		}
		return f.keyring, f.warnings, true, f.err
	}
	changed = f.path != ""
	f.path, f.keyring, f.warnings, f.err = "", nil, nil, nil
	return nil, nil, changed, nil
}

// Path is the file in use, or empty.
func (f *CredentialFile) Path() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.path
}

// redact removes every secret of creds from s, and the base64 forms a
// registry client may have put in a header or URL.
func redact(s string, creds []Credential) string {
	for _, c := range creds {
		for _, secret := range []string{c.Secret, base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Secret))} {
			if len(c.Secret) >= 3 && strings.Contains(s, secret) {
				s = strings.ReplaceAll(s, secret, "[redacted]")
			}
		}
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
