package stats

import (
	"path/filepath"
	"testing"
)

func TestCgroupV2(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"proc/7/cgroup": "0::/podsup/burstable/podY/app\n",
		"cgroup/podsup/burstable/podY/app/memory.current": "1000000\n",
		"cgroup/podsup/burstable/podY/app/memory.max":     "max\n",
		"cgroup/podsup/burstable/podY/app/memory.stat":    "anon 600000\nfile 400000\ninactive_file 300000\npgfault 12\npgmajfault 2\n",
		"cgroup/podsup/burstable/podY/app/cpu.stat":       "usage_usec 2500\nuser_usec 2000\n",
		"cgroup/podsup/burstable/podY/app/pids.current":   "3\n",
		"cgroup/podsup/burstable/podY/memory.current":     "2000000\n",
		"cgroup/podsup/burstable/podY/memory.max":         "4000000\n",
		"cgroup/podsup/burstable/podY/memory.stat":        "anon 1\ninactive_file 500000\n",
		"cgroup/podsup/burstable/podY/cpu.stat":           "usage_usec 9\n",
		"cgroup/memory.stat":                              "anon 3000\nfile 7000\ninactive_file 1000\n",
	} {
		writeFile(t, filepath.Join(dir, name), content)
	}
	h := hostPaths{proc: filepath.Join(dir, "proc"), cgroup: filepath.Join(dir, "cgroup")}
	cg, err := h.cgroupsOf(7)
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.read(cg)
	if err != nil {
		t.Fatal(err)
	}
	if st.mem == nil || st.cpu == nil || st.pids == nil {
		t.Fatalf("container cgroup: %+v", st)
	}
	if got := *st.mem; got.usage != 1000000 || got.workingSet != 700000 || got.rss != 600000 || got.limit != 0 || got.pageFaults != 12 || got.majorPageFaults != 2 {
		t.Errorf("memory %+v: want usage 1000000, working set 700000, rss (anon) 600000, no limit, 12 and 2 faults", got)
	}
	if *st.cpu != 2500000 || *st.pids != 3 {
		t.Errorf("cpu %d ns, %d pids; want 2500000 and 3", *st.cpu, *st.pids)
	}
	pod, err := h.read(cg.parent())
	if err != nil {
		t.Fatal(err)
	}
	if pod.mem == nil || pod.mem.workingSet != 1500000 || pod.mem.limit != 4000000 || *pod.cpu != 9000 || pod.pids != nil {
		t.Errorf("pod cgroup %+v %+v: want working set 1500000, limit 4000000, 9000 ns, no pids file", pod, pod.mem)
	}
	root, err := h.rootMemory()
	if err != nil {
		t.Fatal(err)
	}
	if root.usage != 10000 || root.workingSet != 9000 {
		t.Errorf("root memory on cgroup v2: %+v, want usage anon+file 10000, working set 9000", root)
	}
}

func TestParsers(t *testing.T) {
	if n, err := parseLoadavgTasks([]byte("0.00 0.01 0.05 1/123 456\n")); err != nil || n != 123 {
		t.Errorf("loadavg: %d, %v", n, err)
	}
	for _, bad := range []string{"", "1 2 3", "1 2 3 4/x 5", "1 2 3 44 5"} {
		if _, err := parseLoadavgTasks([]byte(bad)); err == nil {
			t.Errorf("loadavg %q: no error", bad)
		}
	}
	if _, err := parseMeminfo([]byte("MemFree: 1 kB\n")); err == nil {
		t.Error("meminfo without MemTotal: no error")
	}
	if _, err := parseUint([]byte("99999999999999999999999")); err == nil {
		t.Error("overflowing number: no error")
	}
	if v, err := readLimit(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Errorf("missing limit file: %d, no error", v)
	}
	if !unlimited(9223372036854771712) || unlimited(1<<40) {
		t.Error("unlimited: v1's page-rounded MaxInt64 is no limit, 1 TiB is one")
	}
}
