package stats

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/podsup/podsup/runtime"
)

// BenchmarkSummary measures one /stats/summary of 50 pods of two
// containers each on a cgroup v1 tree, with directory sizes cached as
// between two housekeeping passes 1 s apart.
//
//	go test -bench Summary -benchmem ./stats
func BenchmarkSummary(b *testing.B) {
	const pods = 50
	proc, cgroup := hostTree(b, "1000\n", "1000\n")
	rt := &fakeRuntime{rootfs: 1 << 20, pods: map[string]*runtime.PodState{}}
	pid := uint32(1000)
	for i := range pods {
		key := fmt.Sprintf("default/pod%d", i)
		st := &runtime.PodState{Key: key, Sandboxes: []*runtime.Sandbox{{ID: key, PodUID: key, Ready: true, Pid: pid}}}
		writeFile(b, filepath.Join(proc, fmt.Sprint(pid), "net/dev"), netDevFile("lo", 1, "eth0", 100))
		for _, p := range []uint32{pid, pid + 1, pid + 2} {
			writeFile(b, filepath.Join(proc, fmt.Sprint(p), "cgroup"), fmt.Sprintf("4:memory:/podsup/besteffort/pod%d/c%d\n2:cpuacct:/podsup/besteffort/pod%d/c%d\n8:pids:/podsup/besteffort/pod%d/c%d\n", i, p, i, p, i, p))
			dir := fmt.Sprintf("podsup/besteffort/pod%d/c%d", i, p)
			writeFile(b, filepath.Join(cgroup, "memory", dir, "memory.usage_in_bytes"), "1000000\n")
			writeFile(b, filepath.Join(cgroup, "memory", dir, "memory.limit_in_bytes"), "9223372036854771712\n")
			writeFile(b, filepath.Join(cgroup, "memory", dir, "memory.stat"), "total_rss 1\ntotal_inactive_file 1\n")
			writeFile(b, filepath.Join(cgroup, "cpuacct", dir, "cpuacct.usage"), "1000\n")
		}
		for c := 1; c <= 2; c++ {
			st.Containers = append(st.Containers, &runtime.Container{ID: fmt.Sprintf("%s/c%d", key, c), SandboxID: key, Name: fmt.Sprint("c", c),
				State: runtime.StateRunning, Pid: pid + uint32(c), LogPath: filepath.Join(b.TempDir(), "c", "0.log")})
		}
		rt.pods[key] = st
		pid += 3
	}
	clk := clocktesting.NewFakeClock(time.Now())
	c := New(Config{RootDir: b.TempDir()}, rt, WithHostPaths(proc, cgroup), WithStatfs(fakeStatfs), WithClock(clk), WithDiskCacheTTL(time.Hour))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clk.Step(time.Second)
		if _, err := c.Summary(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
