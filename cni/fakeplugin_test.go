package cni

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The test binary doubles as a CNI plugin: tests link it into a plugin
// directory under plugin names (bridge, portmap, loopback, fake, ...), and
// libcni runs it as it would run the real ones. It records each call and
// holds a token per attachment, so tests see what was added and not deleted.

// fakeEnv names the directory where the fake plugin keeps its record.
const fakeEnv = "PODSUP_FAKE_CNI_DIR"

func TestMain(m *testing.M) {
	if cmd := os.Getenv("CNI_COMMAND"); cmd != "" {
		os.Exit(fakeMain(cmd))
	}
	os.Exit(m.Run())
}

// fakeArgs is what a plugin is told, as skel would parse it (skel itself
// would pull a module podsup does not otherwise need).
type fakeArgs struct {
	ContainerID, Netns, IfName, Args string
	StdinData                        []byte
}

// fakeMain is the plugin's main: it speaks the CNI protocol on stdin,
// stdout and the environment.
func fakeMain(cmd string) int {
	stdin, err := io.ReadAll(os.Stdin)
	if err == nil {
		args := &fakeArgs{
			ContainerID: os.Getenv("CNI_CONTAINERID"), Netns: os.Getenv("CNI_NETNS"),
			IfName: os.Getenv("CNI_IFNAME"), Args: os.Getenv("CNI_ARGS"), StdinData: stdin,
		}
		switch cmd {
		case "ADD":
			err = fakeAdd(args)
		case "DEL":
			err = fakeDel(args)
		case "CHECK":
			err = fakeCheck(args)
		case "VERSION":
			err = version.All.Encode(os.Stdout)
		default:
			err = fmt.Errorf("fake plugin: unsupported command %s", cmd)
		}
	}
	if err != nil {
		_ = json.NewEncoder(os.Stdout).Encode(types.Error{Code: types.ErrInternal, Msg: err.Error()})
		return 1
	}
	return 0
}

// fakeConf is a plugin configuration with the fake's knobs.
type fakeConf struct {
	types.PluginConf
	IP            string          `json:"fakeIP"`        // ADD gives the pod this address
	Fail          string          `json:"fakeFail"`      // the command that fails, ADD or DEL
	FailWhile     string          `json:"fakeFailWhile"` // if set, Fail applies only while this file exists
	Hang          bool            `json:"fakeHang"`      // ADD says it runs (fakePlugins.hanging) and never returns
	RuntimeConfig json.RawMessage `json:"runtimeConfig"`
}

// fakeCall is one recorded call.
type fakeCall struct {
	Cmd           string          `json:"cmd"`
	Type          string          `json:"type"`
	Network       string          `json:"network"`
	ContainerID   string          `json:"containerID"`
	Netns         string          `json:"netns"`
	IfName        string          `json:"ifName"`
	Args          string          `json:"args"`
	RuntimeConfig json.RawMessage `json:"runtimeConfig"`
	PrevResult    bool            `json:"prevResult"`
}

func fakeRun(cmd string, args *fakeArgs) (*fakeConf, error) {
	conf := &fakeConf{}
	if err := json.Unmarshal(args.StdinData, conf); err != nil {
		return nil, err
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, err
	}
	dir := os.Getenv(fakeEnv)
	call := fakeCall{
		Cmd: cmd, Type: filepath.Base(os.Args[0]), Network: conf.Name, ContainerID: args.ContainerID,
		Netns: args.Netns, IfName: args.IfName, Args: args.Args, RuntimeConfig: conf.RuntimeConfig,
		PrevResult: conf.PrevResult != nil,
	}
	line, _ := json.Marshal(call)
	f, err := os.OpenFile(filepath.Join(dir, "calls.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return nil, err
	}
	if conf.Fail == cmd {
		if _, err := os.Stat(conf.FailWhile); conf.FailWhile == "" || err == nil {
			return nil, fmt.Errorf("fake %s refuses %s", call.Type, cmd)
		}
	}
	return conf, nil
}

// fakeHeld is the token of an attachment: what a real plugin would leak if
// DEL never came.
func fakeHeld(args *fakeArgs) string {
	return filepath.Join(os.Getenv(fakeEnv), "held", filepath.Base(os.Args[0])+"-"+args.ContainerID+"-"+args.IfName)
}

func fakeAdd(args *fakeArgs) error {
	conf, err := fakeRun("ADD", args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(fakeHeld(args)), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(fakeHeld(args), nil, 0o600); err != nil {
		return err
	}
	if conf.Hang {
		// Only the manager ends this plugin: by killing it.
		if err := os.WriteFile(filepath.Join(os.Getenv(fakeEnv), "hanging-"+filepath.Base(os.Args[0])), nil, 0o600); err != nil {
			return err
		}
		for {
			time.Sleep(time.Hour)
		}
	}
	result := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
	if conf.PrevResult != nil {
		prev, err := types100.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return err
		}
		result = prev
	}
	if conf.IP != "" {
		ip, ipn, err := net.ParseCIDR(conf.IP)
		if err != nil {
			return err
		}
		gw := append(net.IP(nil), ipn.IP...)
		gw[len(gw)-1]++
		result.Interfaces = []*types100.Interface{{Name: "fake0"}, {Name: args.IfName, Sandbox: args.Netns}}
		result.IPs = []*types100.IPConfig{
			{Address: net.IPNet{IP: gw, Mask: ipn.Mask}, Interface: types100.Int(0)},
			{Address: net.IPNet{IP: ip, Mask: ipn.Mask}, Interface: types100.Int(1), Gateway: gw},
		}
	}
	return types.PrintResult(result, conf.CNIVersion)
}

func fakeDel(args *fakeArgs) error {
	if _, err := fakeRun("DEL", args); err != nil {
		return err
	}
	if err := os.Remove(fakeHeld(args)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// fakeCheck fails when the attachment's token is gone, as a real plugin's
// CHECK fails when the interface it added is.
func fakeCheck(args *fakeArgs) error {
	if _, err := fakeRun("CHECK", args); err != nil {
		return err
	}
	if _, err := os.Stat(fakeHeld(args)); err != nil {
		return fmt.Errorf("fake %s: nothing held for %s: %w", filepath.Base(os.Args[0]), args.ContainerID, err)
	}
	return nil
}

// fakePlugins is a plugin directory of fakes and the record they write.
type fakePlugins struct {
	t      *testing.T
	binDir string
	dir    string
}

// newFakePlugins links the test binary into a plugin directory under each
// name and points the fakes' record at a fresh directory.
func newFakePlugins(t *testing.T, names ...string) *fakePlugins {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePlugins{t: t, binDir: t.TempDir(), dir: t.TempDir()}
	for _, n := range names {
		if err := os.Symlink(self, filepath.Join(f.binDir, n)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(fakeEnv, f.dir)
	// Under -race the fakes would each sleep a second at exit, waiting for
	// other threads' reports; libcni passes them the environment.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	return f
}

// calls returns the calls recorded so far.
func (f *fakePlugins) calls() []fakeCall {
	f.t.Helper()
	file, err := os.Open(filepath.Join(f.dir, "calls.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	var out []fakeCall
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var c fakeCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// summary is the calls as "CMD type ifname container" lines.
func (f *fakePlugins) summary() []string {
	var out []string
	for _, c := range f.calls() {
		out = append(out, strings.Join([]string{c.Cmd, c.Type, c.IfName, c.ContainerID}, " "))
	}
	return out
}

// held lists the attachments added and not deleted.
func (f *fakePlugins) held() []string {
	f.t.Helper()
	return dirNames(f.t, filepath.Join(f.dir, "held"))
}

// dirNames lists a directory's entries, sorted; a missing one has none.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// hanging reports whether the plugin of that type got to its hang (fakeHang).
func (f *fakePlugins) hanging(pluginType string) bool {
	_, err := os.Stat(filepath.Join(f.dir, "hanging-"+pluginType))
	return err == nil
}

// reset forgets the calls recorded so far.
func (f *fakePlugins) reset() {
	f.t.Helper()
	if err := os.Remove(filepath.Join(f.dir, "calls.jsonl")); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.t.Fatal(err)
	}
}

// fileNS is netnsOps with plain files, for tests without root.
type fileNS struct{ failCreate error }

func (f *fileNS) create(path, _ string, _ *specs.LinuxIDMapping) error {
	if f.failCreate != nil {
		return f.failCreate
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte("netns"), 0o444)
}

func (f *fileNS) remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (f *fileNS) valid(path string) bool {
	data, err := os.ReadFile(path)
	return err == nil && string(data) == "netns"
}
