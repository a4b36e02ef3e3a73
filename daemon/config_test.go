package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// parseRun runs `podsup run` with args up to the point where the
// configuration is checked, and returns it.
func parseRun(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	var cfg *Config
	cmd := RunCommand()
	cmd.Action = func(c *cli.Context) error {
		var err error
		cfg, err = configFrom(c)
		return err
	}
	app := &cli.App{Name: "podsup", Commands: []*cli.Command{cmd}, DisableSliceFlagSeparator: true,
		ExitErrHandler: func(*cli.Context, error) {}}
	err := app.Run(append([]string{"podsup", "run"}, args...))
	return cfg, err
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "podsup.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `
manifests: /from/file
node-name: file-node
file-check-frequency: 7s
manifest-url: http://127.0.0.1:1/pods
manifest-url-header: ["X-A: 1", "X-B: 2, 3"]
verbosity: 1
`)
	t.Setenv("PODSUP_NODE_NAME", "env-node")
	t.Setenv("PODSUP_HTTP_CHECK_FREQUENCY", "9s")
	cfg, err := parseRun(t, "--config", file, "--manifests", "/from/flag")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"flag beats file", cfg.Manifests, "/from/flag"},
		{"env beats file", cfg.NodeName, "env-node"},
		{"file beats default", cfg.FileCheckFrequency, 7 * time.Second},
		{"env beats default", cfg.HTTPCheckFrequency, 9 * time.Second},
		{"default stays", cfg.RootDir, "/var/lib/podsup"},
		{"list from file", cfg.ManifestURLHeaders.Get("X-B"), "2, 3"},
		{"number from file", cfg.Verbosity, 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigAlias(t *testing.T) {
	cfg, err := parseRun(t, "--pod-manifest-path", "/etc/k/m")
	if err != nil || cfg.Manifests != "/etc/k/m" {
		t.Fatalf("alias: %v %+v", err, cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--config", writeConfig(t, "manifest: /x\n")}, `podsup.yaml: "manifest" is not a setting of podsup run`},
		{"bad duration in file", []string{"--config", writeConfig(t, "file-check-frequency: soon\n")}, "podsup.yaml: file-check-frequency: "},
		{"bad yaml", []string{"--config", writeConfig(t, "a: [\n")}, "podsup.yaml: "},
		{"missing file", []string{"--config", "/nonexistent/podsup.yaml"}, "--config: open /nonexistent/podsup.yaml"},
		{"bad node name", []string{"--node-name", "Node_1"}, `--node-name "Node_1"`},
		{"tiny frequency", []string{"--file-check-frequency", "1ms"}, "--file-check-frequency 1ms: must be at least 100ms"},
		{"bad header", []string{"--manifest-url", "http://x/", "--manifest-url-header", "nocolon"}, "--manifest-url-header: header \"nocolon\""},
		{"relative root", []string{"--root-dir", "var/lib"}, `--root-dir "var/lib": must be an absolute path`},
		{"relative seccomp root", []string{"--seccomp-profile-root", "seccomp"}, `--seccomp-profile-root "seccomp": must be an absolute path`},
		{"no source", []string{"--manifests", "", "--address", "", "--admin-socket", ""}, "no manifest source"},
		{"bad namespace", []string{"--containerd-namespace", "a/b"}, "--containerd-namespace"},
		{"host sysctl", []string{"--allowed-unsafe-sysctls", "net.core.*,vm.swappiness"}, `--allowed-unsafe-sysctls: "vm.swappiness" is not known to be namespaced`},
		{"host sysctl pattern", []string{"--allowed-unsafe-sysctls", "kernel.*"}, `--allowed-unsafe-sysctls: "kernel.*": the sysctls it matches are not known to be namespaced`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseRun(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestSeccompProfileRoot: Localhost seccomp profiles are looked for where
// the kubelet keeps them unless --seccomp-profile-root says otherwise.
func TestSeccompProfileRoot(t *testing.T) {
	for want, args := range map[string][]string{
		"/var/lib/kubelet/seccomp": nil,
		"/etc/podsup/seccomp":      {"--seccomp-profile-root", "/etc/podsup/seccomp"},
	} {
		cfg, err := parseRun(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.SeccompDir != want {
			t.Errorf("%q: seccomp profile root %q, want %q", args, cfg.SeccompDir, want)
		}
	}
}
