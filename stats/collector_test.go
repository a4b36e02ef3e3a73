package stats

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/eviction"
	"github.com/podsup/podsup/runtime"
)

// fakeRuntime is one pod whose sandbox is pid 100 and whose container,
// "app", is pid 101.
type fakeRuntime struct {
	pods    map[string]*runtime.PodState
	rootfs  uint64
	queried int
}

func (f *fakeRuntime) ListPods(context.Context) (map[string]*runtime.PodState, error) {
	return f.pods, nil
}

func (f *fakeRuntime) SnapshotUsage(context.Context, string) (uint64, uint64, error) {
	f.queried++
	return f.rootfs, 7, nil
}

// hostTree writes a cgroup v1 machine: 8 GiB of memory, 3 GiB working set
// at the root; the pod's cgroup at /podsup/besteffort/podX with the
// sandbox and the container below it.
func hostTree(t testing.TB, podCPU, appCPU string) (proc, cgroup string) {
	t.Helper()
	dir := t.TempDir()
	proc, cgroup = filepath.Join(dir, "proc"), filepath.Join(dir, "cgroup")
	files := map[string]string{
		"proc/meminfo":                        "MemTotal:        8388608 kB\nMemFree:          1000 kB\nMemAvailable:    5000000 kB\n",
		"proc/stat":                           "cpu  100 0 100 1000 5 0 0 0 0 0\ncpu0 100 0 100 1000 5 0 0 0 0 0\nbtime 1700000000\n",
		"proc/loadavg":                        "0.50 0.40 0.30 2/345 9999\n",
		"proc/sys/kernel/pid_max":             "32768\n",
		"proc/sys/kernel/threads-max":         "200000\n",
		"proc/self/net/dev":                   netDevFile("lo", 5, "eth0", 1000, "veth1234", 77),
		"proc/100/cgroup":                     "4:memory:/podsup/besteffort/podX/sb\n2:cpuacct:/podsup/besteffort/podX/sb\n8:pids:/podsup/besteffort/podX/sb\n0::/\n",
		"proc/100/net/dev":                    netDevFile("lo", 9, "eth0", 4096),
		"proc/101/cgroup":                     "4:memory:/podsup/besteffort/podX/app\n2:cpuacct:/podsup/besteffort/podX/app\n8:pids:/podsup/besteffort/podX/app\n0::/\n",
		"cgroup/memory/memory.usage_in_bytes": "4294967296\n",
		"cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		"cgroup/memory/memory.stat":           "total_rss 2147483648\ntotal_inactive_file 1073741824\ntotal_pgfault 10\ntotal_pgmajfault 1\n",
		"cgroup/cpuacct/cpuacct.usage":        "500000000000\n",
		"cgroup/memory/podsup/besteffort/podX/memory.usage_in_bytes":     "209715200\n",
		"cgroup/memory/podsup/besteffort/podX/memory.limit_in_bytes":     "9223372036854771712\n",
		"cgroup/memory/podsup/besteffort/podX/memory.stat":               "total_rss 104857600\ntotal_inactive_file 52428800\ntotal_pgfault 3\ntotal_pgmajfault 0\n",
		"cgroup/cpuacct/podsup/besteffort/podX/cpuacct.usage":            podCPU,
		"cgroup/pids/podsup/besteffort/podX/pids.current":                "4\n",
		"cgroup/memory/podsup/besteffort/podX/app/memory.usage_in_bytes": "157286400\n",
		"cgroup/memory/podsup/besteffort/podX/app/memory.limit_in_bytes": "268435456\n",
		"cgroup/memory/podsup/besteffort/podX/app/memory.stat":           "total_rss 104857600\ntotal_inactive_file 52428800\n",
		"cgroup/cpuacct/podsup/besteffort/podX/app/cpuacct.usage":        appCPU,
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return proc, cgroup
}

func netDevFile(pairs ...any) string {
	var b strings.Builder
	b.WriteString("Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n")
	for i := 0; i < len(pairs); i += 2 {
		n := pairs[i+1].(int)
		b.WriteString(strings.Repeat(" ", 2) + pairs[i].(string) + ": ")
		// rx bytes, packets, errs, then 5 more; tx bytes, packets, errs...
		for j, v := range []int{n, 1, 0, 0, 0, 0, 0, 0, 2 * n, 1, 1, 0, 0, 0, 0, 0} {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Itoa(v))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeStatfs: nodefs is 100 GiB with 20 free; imagefs 50 GiB with 5 free.
func fakeStatfs(path string, st *unix.Statfs_t) error {
	*st = unix.Statfs_t{Bsize: 4096, Blocks: 100 << 18, Bfree: 20 << 18, Bavail: 20 << 18, Files: 1000, Ffree: 900}
	if strings.Contains(path, "snapshots") {
		*st = unix.Statfs_t{Bsize: 4096, Blocks: 50 << 18, Bfree: 5 << 18, Bavail: 5 << 18, Files: 500, Ffree: 10}
	}
	return nil
}

func TestSummary(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "logs", "default_web_uid1", "app", "0.log")
	writeFile(t, logPath, strings.Repeat("x", 10000))
	podDir := filepath.Join(dir, "pods", "X")
	writeFile(t, filepath.Join(podDir, "volumes", "cache", "data"), strings.Repeat("y", 20000))

	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	rt := &fakeRuntime{rootfs: 1 << 20, pods: map[string]*runtime.PodState{
		"default/web": {Key: "default/web",
			Sandboxes: []*runtime.Sandbox{{ID: "sb", PodUID: "uid1", Ready: true, Pid: 100, CreatedAt: start}},
			Containers: []*runtime.Container{
				{ID: "app", SandboxID: "sb", Name: "app", State: runtime.StateRunning, Pid: 101, StartedAt: start, LogPath: logPath},
				{ID: "old", SandboxID: "sb", Name: "app", State: runtime.StateExited, LogPath: logPath},
			}},
		"default/gone": {Key: "default/gone", Sandboxes: []*runtime.Sandbox{{ID: "sb2", Ready: false}}},
	}}
	clk := clocktesting.NewFakeClock(start.Add(time.Minute))
	proc, cgroup := hostTree(t, "1000000000\n", "800000000\n")
	c := New(Config{NodeName: "node1", RootDir: dir, ImageFs: "/var/lib/containerd/snapshots", PodDir: func(string) string { return podDir }},
		rt, WithHostPaths(proc, cgroup), WithStatfs(fakeStatfs), WithClock(clk))

	s, err := c.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := s.Node
	checks := []struct {
		name      string
		got, want any
	}{
		{"node name", n.NodeName, "node1"},
		{"start time (btime)", n.StartTime.Unix(), int64(1700000000)},
		{"memory usage", *n.Memory.UsageBytes, uint64(4 << 30)},
		{"memory working set: usage less inactive file", *n.Memory.WorkingSetBytes, uint64(3 << 30)},
		{"memory.available: capacity less working set", *n.Memory.AvailableBytes, uint64(5 << 30)},
		{"node cpu from the root cpuacct", *n.CPU.UsageCoreNanoSeconds, uint64(500e9)},
		{"first reading has no rate", n.CPU.UsageNanoCores == nil, true},
		{"node network leaves out lo and veths", len(n.Network.Interfaces), 1},
		{"node network default", n.Network.Name, "eth0"},
		{"nodefs available", *n.Fs.AvailableBytes, uint64(20 << 30)},
		{"nodefs inodes free", *n.Fs.InodesFree, uint64(900)},
		{"imagefs capacity", *n.Runtime.ImageFs.CapacityBytes, uint64(50 << 30)},
		{"max pid: smaller of pid_max and threads-max", *n.Rlimit.MaxPID, int64(32768)},
		{"tasks", *n.Rlimit.NumOfRunningProcesses, int64(345)},
		{"pods with a running sandbox", len(s.Pods), 1},
	}
	p := s.Pods[0]
	checks = append(checks, []struct {
		name      string
		got, want any
	}{
		{"pod ref", p.PodRef, statsapi.PodReference{Name: "web", Namespace: "default", UID: "uid1"}},
		{"pod memory from the pod cgroup", *p.Memory.WorkingSetBytes, uint64(150 << 20)},
		{"pod processes", *p.ProcessStats.ProcessCount, uint64(4)},
		{"pod network rx", *p.Network.RxBytes, uint64(4096)},
		{"pod network tx", *p.Network.TxBytes, uint64(8192)},
		{"running containers only", len(p.Containers), 1},
		{"container working set", *p.Containers[0].Memory.WorkingSetBytes, uint64(100 << 20)},
		{"container available under its limit", *p.Containers[0].Memory.AvailableBytes, uint64(156 << 20)},
		{"container rootfs", *p.Containers[0].Rootfs.UsedBytes, uint64(1 << 20)},
		{"container logs at least the file", *p.Containers[0].Logs.UsedBytes >= 10000, true},
		{"volumes", len(p.VolumeStats), 1},
		{"volume name", p.VolumeStats[0].Name, "cache"},
		{"ephemeral: rootfs + logs + volumes", *p.EphemeralStorage.UsedBytes >= 1<<20+30000, true},
	}...)
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}

	// A second reading 10 s later has rates: the pod used 2 s of CPU in
	// 10 s, 0.2 cores.
	clk.Step(10 * time.Second)
	writeFile(t, filepath.Join(cgroup, "cpuacct/podsup/besteffort/podX/cpuacct.usage"), "3000000000\n")
	s, err = c.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Pods[0].CPU.UsageNanoCores; got == nil || *got != 2e8 {
		t.Errorf("pod nanocores: got %v, want 2e8", got)
	}
	if got := s.Pods[0].Containers[0].CPU.UsageNanoCores; got == nil || *got != 0 {
		t.Errorf("idle container nanocores: got %v, want 0", got)
	}
	// At once again: the rate stays, the writable layer's size is reused.
	s, err = c.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Pods[0].CPU.UsageNanoCores; got == nil || *got != 2e8 {
		t.Errorf("pod nanocores read again at once: got %v, want the last rate 2e8", got)
	}
	if rt.queried != 2 {
		t.Errorf("writable layer measured %d times in three readings over 10 s, want 2 (sizes are reused for 5 s)", rt.queried)
	}
}

func TestSummaryJSONShape(t *testing.T) {
	// Field names a kubelet summary reader (kubectl top, metrics-server,
	// k9s) looks for.
	s := statsapi.Summary{Node: statsapi.NodeStats{NodeName: "n", Memory: &statsapi.MemoryStats{AvailableBytes: ptr(uint64(1)), WorkingSetBytes: ptr(uint64(2))},
		Network: &statsapi.NetworkStats{InterfaceStats: statsapi.InterfaceStats{Name: "eth0", RxBytes: ptr(uint64(3))}},
		Runtime: &statsapi.RuntimeStats{ImageFs: &statsapi.FsStats{InodesFree: ptr(uint64(4))}}, Rlimit: &statsapi.RlimitStats{MaxPID: ptr(int64(5)), NumOfRunningProcesses: ptr(int64(6))}},
		Pods: []statsapi.PodStats{{PodRef: statsapi.PodReference{Name: "p"}, EphemeralStorage: &statsapi.FsStats{UsedBytes: ptr(uint64(7))},
			VolumeStats: []statsapi.VolumeStats{{Name: "v", FsStats: statsapi.FsStats{UsedBytes: ptr(uint64(8))}}}, ProcessStats: &statsapi.ProcessStats{ProcessCount: ptr(uint64(9))}}}}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"nodeName":"n"`, `"availableBytes":1`, `"workingSetBytes":2`, `"name":"eth0","rxBytes":3`,
		`"imageFs":{`, `"inodesFree":4`, `"maxpid":5`, `"curproc":6`, `"podRef":{"name":"p"`, `"ephemeral-storage":{`,
		`"volume":[{`, `"usedBytes":8,"name":"v"`, `"process_stats":{"process_count":9}`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("summary JSON lacks %s:\n%s", want, data)
		}
	}
}

func TestSignals(t *testing.T) {
	proc, cgroup := hostTree(t, "1\n", "1\n")
	rt := &fakeRuntime{rootfs: 100, pods: map[string]*runtime.PodState{"default/web": {Key: "default/web",
		Sandboxes:  []*runtime.Sandbox{{ID: "sb", Ready: true, Pid: 100}},
		Containers: []*runtime.Container{{ID: "app", SandboxID: "sb", Name: "app", State: runtime.StateRunning, Pid: 101}}}}}
	c := New(Config{RootDir: t.TempDir(), ImageFs: "/snapshots"}, rt, WithHostPaths(proc, cgroup), WithStatfs(fakeStatfs))
	st, err := c.EvictionStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[eviction.Signal]eviction.Amount{
		eviction.MemoryAvailable:   {Available: 5 << 30, Capacity: 8 << 30},
		eviction.NodeFsAvailable:   {Available: 20 << 30, Capacity: 100 << 30},
		eviction.NodeFsInodesFree:  {Available: 900, Capacity: 1000},
		eviction.ImageFsAvailable:  {Available: 5 << 30, Capacity: 50 << 30},
		eviction.ImageFsInodesFree: {Available: 10, Capacity: 500},
		eviction.PIDAvailable:      {Available: 32768 - 345, Capacity: 32768},
	}
	for s, a := range want {
		if st.Signals[s] != a {
			t.Errorf("%s: got %+v, want %+v", s, st.Signals[s], a)
		}
	}
	u := st.Pods["default/web"]
	if u.MemoryWorkingSet != 150<<20 || u.Rootfs != 100 || u.Processes != 4 || u.Ephemeral < 100 {
		t.Errorf("pod usage %+v", u)
	}
}
