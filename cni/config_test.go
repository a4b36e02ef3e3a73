package cni

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

const (
	fakeConflist = `{"cniVersion":"1.0.0","name":"fakenet","plugins":[` +
		`{"type":"fake","fakeIP":"10.1.0.5/24"},{"type":"fakeportmap","capabilities":{"portMappings":true}}]}`
	singleConf = `{"cniVersion":"0.4.0","name":"single","type":"fake"}`
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadNetwork(t *testing.T) {
	pluginTypes := func(n *network) []string {
		var out []string
		for _, p := range n.list.Plugins {
			out = append(out, p.Network.Type)
		}
		return out
	}
	tests := []struct {
		name      string
		files     map[string]string
		setup     func(t *testing.T, dir string)
		wantFile  string   // the file used; empty for the built-in network
		wantTypes []string // plugin types of the list
		wantErr   string   // part of the error, which must name the file
	}{
		{name: "empty directory", wantTypes: []string{"bridge", "portmap"}},
		{
			name:      "missing directory",
			setup:     func(t *testing.T, dir string) { os.Remove(dir) },
			wantTypes: []string{"bridge", "portmap"},
		},
		{
			name: "only files that are not configurations",
			files: map[string]string{
				"README.md": "x", "10-a.conflist~": "{", ".10-a.conflist.swp": "{", "10-a.conflist.dpkg-old": "{",
			},
			wantTypes: []string{"bridge", "portmap"},
		},
		{
			name:      "lexically first wins",
			files:     map[string]string{"20-b.conflist": singleConfList("b"), "10-a.conflist": fakeConflist},
			wantFile:  "10-a.conflist",
			wantTypes: []string{"fake", "fakeportmap"},
		},
		{
			name:      "a .conf first in order is wrapped in a list",
			files:     map[string]string{"05-c.conf": singleConf, "10-a.conflist": fakeConflist},
			wantFile:  "05-c.conf",
			wantTypes: []string{"fake"},
		},
		{
			name:      "a .json plugin is wrapped in a list",
			files:     map[string]string{"30-d.json": singleConf},
			wantFile:  "30-d.json",
			wantTypes: []string{"fake"},
		},
		{
			name:      "a .conf holding a list is read as one",
			files:     map[string]string{"10-a.conf": fakeConflist},
			wantFile:  "10-a.conf",
			wantTypes: []string{"fake", "fakeportmap"},
		},
		{
			name:  "a symlink is followed, a directory skipped",
			files: map[string]string{"target/x.conflist": fakeConflist, "00-dir.conflist/x": ""},
			setup: func(t *testing.T, dir string) {
				symlink(t, filepath.Join(dir, "target/x.conflist"), filepath.Join(dir, "50-link.conflist"))
			},
			wantFile:  "50-link.conflist",
			wantTypes: []string{"fake", "fakeportmap"},
		},
		{
			name:     "a broken first file is an error, not skipped",
			files:    map[string]string{"01-bad.conflist": `{"name": "x", "plugins": [`, "10-a.conflist": fakeConflist},
			wantFile: "01-bad.conflist",
			wantErr:  "not a JSON object: unexpected end of JSON input",
		},
		{
			name:     "plugins not a list",
			files:    map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","name":"x","plugins":{}}`},
			wantFile: "10-a.conflist",
			wantErr:  "error parsing configuration list: invalid 'plugins' type",
		},
		{
			name:     "not JSON",
			files:    map[string]string{"10-a.conf": "name: yaml"},
			wantFile: "10-a.conf",
			wantErr:  "not a JSON object",
		},
		{
			name:     "plugin without a type",
			files:    map[string]string{"10-a.conf": `{"cniVersion":"0.4.0","name":"x"}`},
			wantFile: "10-a.conf",
			wantErr:  "missing 'type'",
		},
		{
			name:     "no cniVersion",
			files:    map[string]string{"10-a.conflist": `{"name":"x","plugins":[{"type":"fake"}]}`},
			wantFile: "10-a.conflist",
			wantErr:  "cniVersion: required",
		},
		{
			name:     "no plugins",
			files:    map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","name":"x","plugins":[]}`},
			wantFile: "10-a.conflist",
			wantErr:  "no plugins in list",
		},
		{
			name:     "bad network name",
			files:    map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"fake"}]}`},
			wantFile: "10-a.conflist",
			wantErr:  `name "a/b"`,
		},
		{
			name:     "podsup's loopback name is reserved",
			files:    map[string]string{"10-a.conflist": singleConfList(loopbackName)},
			wantFile: "10-a.conflist",
			wantErr:  "reserved",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			o, err := buildOptions([]Option{WithConfDir(dir), WithRootDir("/var/lib/podsup-test")})
			if err != nil {
				t.Fatal(err)
			}
			n, err := loadNetwork(o, netip.MustParsePrefix(DefaultPodCIDR))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("loaded %s, want an error", n.desc)
				}
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) ||
					!strings.HasPrefix(err.Error(), filepath.Join(dir, tt.wantFile)+": ") {
					t.Fatalf("error %q: want ErrConfig naming %s and saying %q", err, tt.wantFile, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantDesc := "built-in default podsup (10.86.0.0/16)"
			if tt.wantFile != "" {
				wantDesc = "from " + filepath.Join(dir, tt.wantFile)
			}
			if n.desc != wantDesc || n.builtin != (tt.wantFile == "") {
				t.Errorf("network %q (builtin %v), want %q", n.desc, n.builtin, wantDesc)
			}
			if got := pluginTypes(n); !reflect.DeepEqual(got, tt.wantTypes) {
				t.Errorf("plugins %v, want %v", got, tt.wantTypes)
			}
		})
	}
}

func singleConfList(name string) string {
	return `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[{"type":"fake"}]}`
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestBuiltinNetwork(t *testing.T) {
	tests := []struct {
		cidr, route string
	}{
		{"10.86.0.0/16", "0.0.0.0/0"},
		{"fd86:0:0:1::/64", "::/0"},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			o, err := buildOptions([]Option{WithRootDir("/srv/podsup"), WithBridgeName("br-test")})
			if err != nil {
				t.Fatal(err)
			}
			n, err := builtinNetwork(o, netip.MustParsePrefix(tt.cidr))
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(n.list.Bytes, &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{
				"cniVersion": "0.4.0",
				"name":       "podsup",
				"plugins": []any{
					map[string]any{
						"type": "bridge", "bridge": "br-test", "isGateway": true, "ipMasq": true, "hairpinMode": true,
						"ipam": map[string]any{
							"type":    "host-local",
							"ranges":  []any{[]any{map[string]any{"subnet": tt.cidr}}},
							"routes":  []any{map[string]any{"dst": tt.route}},
							"dataDir": "/srv/podsup/cni/ipam",
						},
					},
					map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "snat": true},
				},
			}
			if !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.MarshalIndent(got, "", "  ")
				t.Errorf("built-in network:\n%s", gotJSON)
			}
			if n.desc != "built-in default podsup ("+tt.cidr+")" {
				t.Errorf("description %q", n.desc)
			}
		})
	}
}

func TestParsePodCIDR(t *testing.T) {
	tests := []struct {
		cidr    string
		wantErr string
	}{
		{cidr: DefaultPodCIDR},
		{cidr: "192.168.77.0/24"},
		{cidr: "10.9.8.0/29"},
		{cidr: "fd00:86::/64"},
		{cidr: "fd00:86::/125"},
		{cidr: "10.86.0.0", wantErr: "not a CIDR"},
		{cidr: "10.86.0.0/33", wantErr: "not a CIDR"},
		{cidr: "banana", wantErr: "not a CIDR"},
		{cidr: "10.86.1.0/16", wantErr: "host bits are set; did you mean 10.86.0.0/16?"},
		{cidr: "10.9.8.0/30", wantErr: "prefix /30 leaves room for too few pods; use /29 or shorter"},
		{cidr: "fd00:86::/126", wantErr: "use /125 or shorter"},
		{cidr: "::ffff:10.86.0.0/112", wantErr: "write it as IPv4"},
		{cidr: "127.1.0.0/16", wantErr: "loopback"},
		{cidr: "169.254.0.0/24", wantErr: "link-local"},
		{cidr: "0.0.0.0/0", wantErr: `"this network"`},
		{cidr: "224.1.0.0/16", wantErr: "multicast"},
		{cidr: "fe80::/64", wantErr: "link-local"},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			p, err := parsePodCIDR(tt.cidr)
			if tt.wantErr == "" {
				if err != nil || p.String() != tt.cidr {
					t.Fatalf("got %v, %v; want %s", p, err, tt.cidr)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) ||
				!strings.HasPrefix(err.Error(), `pod CIDR "`+tt.cidr+`": `) {
				t.Fatalf("error %v; want ErrConfig naming the CIDR and saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestDefaultPodCIDRAvoidsKnownNetworks checks the default against the
// defaults of the container stacks an edge box may also run.
func TestDefaultPodCIDRAvoidsKnownNetworks(t *testing.T) {
	def := netip.MustParsePrefix(DefaultPodCIDR)
	for _, taken := range []struct{ cidr, who string }{
		{"10.88.0.0/16", "podman"},
		{"10.89.0.0/16", "podman's first extra networks"},
		{"10.90.0.0/15", "podman's pool"},
		{"10.92.0.0/14", "podman's pool"},
		{"10.96.0.0/11", "podman's pool"},
		{"10.128.0.0/9", "podman's pool"},
		{"10.85.0.0/16", "CRI-O"},
		{"172.17.0.0/16", "docker"},
		{"172.16.0.0/12", "docker's pools"},
		{"10.96.0.0/12", "kubernetes services"},
		{"10.244.0.0/16", "flannel, kind"},
		{"192.168.0.0/16", "calico, docker's pools"},
		{"10.42.0.0/16", "k3s pods"},
		{"10.43.0.0/16", "k3s services"},
		{"10.87.0.0/16", "dagger"},
		{"100.64.0.0/10", "CGNAT, tailscale"},
	} {
		if def.Overlaps(netip.MustParsePrefix(taken.cidr)) {
			t.Errorf("DefaultPodCIDR %s overlaps %s (%s)", def, taken.cidr, taken.who)
		}
	}
}

func TestNewErrors(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{"10-bad.conflist": "{"})
	tests := []struct {
		name    string
		opts    []Option
		wantErr string
		isCfg   bool
	}{
		{"relative root", []Option{WithRootDir("var/lib/podsup")}, `root directory "var/lib/podsup": must be an absolute path`, false},
		{"bad pod CIDR", []Option{WithPodCIDR("10.86.0.0/31")}, `pod CIDR "10.86.0.0/31": prefix /31`, true},
		{"bad configuration", []Option{WithConfDir(confDir)}, filepath.Join(confDir, "10-bad.conflist") + ": ", true},
		{"long bridge name", []Option{WithBridgeName("a-very-long-bridge")}, "must be 1 to 15 characters", false},
		{"no plugin directories", []Option{WithBinDirs(nil)}, "need at least one", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]Option{WithRootDir(t.TempDir()), WithConfDir(t.TempDir()), WithLogger(discard)}, tt.opts...)
			_, err := New(opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrConfig) != tt.isCfg {
				t.Fatalf("New: %v; want %q (ErrConfig %v)", err, tt.wantErr, tt.isCfg)
			}
		})
	}
}
