package stats

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// taskCgroups is where one task's cgroups are, as /proc/<pid>/cgroup says:
// the path of each cgroup v1 controller podsup reads ("" when that
// controller is not on a v1 hierarchy) and the cgroup v2 path. Reading the
// task's own file finds its cgroups whatever the cgroup driver (cgroupfs or
// systemd) named them.
type taskCgroups struct {
	memory, cpuacct, pids string
	unified               string
	hasUnified            bool
}

// parseProcCgroup parses /proc/<pid>/cgroup: "hierarchy:controllers:path"
// lines, where cgroup v2's line has hierarchy 0 and no controllers.
func parseProcCgroup(data []byte) taskCgroups {
	var t taskCgroups
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		id, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		ctrls, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok {
			continue
		}
		if string(id) == "0" && len(ctrls) == 0 {
			t.unified, t.hasUnified = string(path), true
			continue
		}
		for c := range bytes.SplitSeq(ctrls, []byte{','}) {
			switch string(c) {
			case "memory":
				t.memory = string(path)
			case "cpuacct":
				t.cpuacct = string(path)
			case "pids":
				t.pids = string(path)
			}
		}
	}
	return t
}

// cgroupStats is what a cgroup holds at one moment; a nil field could not
// be read.
type cgroupStats struct {
	cpu  *uint64 // cumulative CPU time in nanoseconds
	mem  *memStats
	pids *uint64
}

// memStats is a cgroup's memory, in bytes and page fault counts.
type memStats struct {
	usage, workingSet, rss, pageFaults, majorPageFaults uint64
	limit                                               uint64 // 0: none
}

// memStat is what podsup reads of a memory.stat file.
type memStat struct {
	inactiveFile, rss, pageFaults, majorPageFaults, anon, file uint64
}

// parseMemoryStat reads memory.stat. On cgroup v1 the hierarchical total_
// fields are read, which include the cgroup's children, as cAdvisor does.
func parseMemoryStat(data []byte, v1 bool) memStat {
	var s memStat
	eachKeyValue(data, func(key []byte, v uint64) {
		if v1 {
			var ok bool
			if key, ok = bytes.CutPrefix(key, []byte("total_")); !ok {
				return
			}
			if string(key) == "rss" {
				s.rss = v
			}
		}
		switch string(key) {
		case "inactive_file":
			s.inactiveFile = v
		case "pgfault":
			s.pageFaults = v
		case "pgmajfault":
			s.majorPageFaults = v
		case "anon":
			s.anon = v
			s.rss = v // cgroup v2 has no rss; cAdvisor reports anon
		case "file":
			s.file = v
		}
	})
	return s
}

// workingSet is usage less the inactive file cache, the memory the kernel
// cannot easily reclaim, as cAdvisor and so the kubelet compute it.
func workingSet(usage, inactiveFile uint64) uint64 {
	if usage < inactiveFile {
		return 0
	}
	return usage - inactiveFile
}

func (s memStat) memStats(usage, limit uint64) *memStats {
	return &memStats{usage: usage, workingSet: workingSet(usage, s.inactiveFile), rss: s.rss,
		pageFaults: s.pageFaults, majorPageFaults: s.majorPageFaults, limit: limit}
}

// cgroupsOf reads where the task pid's cgroups are.
func (h hostPaths) cgroupsOf(pid uint32) (taskCgroups, error) {
	data, err := os.ReadFile(filepath.Join(h.proc, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if err != nil {
		return taskCgroups{}, fmt.Errorf("cgroups of pid %d: %w", pid, err)
	}
	return parseProcCgroup(data), nil
}

// parent is the cgroups one level up: a pod's, for a task of one of its
// containers, since each container has a cgroup of its own below the pod's.
func (t taskCgroups) parent() taskCgroups {
	up := func(p string) string {
		if p == "" {
			return ""
		}
		return filepath.Dir(p)
	}
	return taskCgroups{memory: up(t.memory), cpuacct: up(t.cpuacct), pids: up(t.pids),
		unified: up(t.unified), hasUnified: t.hasUnified}
}

// read reads the cgroups t names: each controller on cgroup v1 when it is
// on a v1 hierarchy, otherwise on cgroup v2. What does not exist is left
// nil without an error (a task that just ended).
func (h hostPaths) read(t taskCgroups) (cgroupStats, error) {
	v2 := filepath.Join(h.cgroup, t.unified)
	var st cgroupStats
	var errs []error
	keep := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	var err error
	switch {
	case t.memory != "":
		st.mem, err = memoryV1(filepath.Join(h.cgroup, "memory", t.memory))
		keep(err)
	case t.hasUnified:
		st.mem, err = memoryV2(v2)
		keep(err)
	}
	switch {
	case t.cpuacct != "":
		st.cpu, err = optional(readUint(filepath.Join(h.cgroup, "cpuacct", t.cpuacct, "cpuacct.usage")))
		keep(err)
	case t.hasUnified:
		st.cpu, err = cpuV2(v2)
		keep(err)
	}
	switch {
	case t.pids != "":
		st.pids, err = optional(readUint(filepath.Join(h.cgroup, "pids", t.pids, "pids.current")))
		keep(err)
	case t.hasUnified:
		st.pids, err = optional(readUint(filepath.Join(v2, "pids.current")))
		keep(err)
	}
	return st, errors.Join(errs...)
}

func optional(v uint64, err error) (*uint64, error) {
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// memoryV1 reads a cgroup v1 memory cgroup.
func memoryV1(dir string) (*memStats, error) {
	return memoryAt(dir, "memory.usage_in_bytes", "memory.limit_in_bytes", true)
}

// memoryV2 reads a cgroup v2 cgroup's memory.
func memoryV2(dir string) (*memStats, error) {
	return memoryAt(dir, "memory.current", "memory.max", false)
}

// memoryAt reads a memory cgroup's usage, limit and memory.stat.
func memoryAt(dir, usageFile, limitFile string, v1 bool) (*memStats, error) {
	usage, err := readUint(filepath.Join(dir, usageFile))
	if err != nil {
		return nil, err
	}
	limit, err := readLimit(filepath.Join(dir, limitFile))
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return nil, err
	}
	return parseMemoryStat(data, v1).memStats(usage, limit), nil
}

// cpuV2 reads cpu.stat's usage_usec, in nanoseconds.
func cpuV2(dir string) (*uint64, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return nil, err
	}
	var usec *uint64
	eachKeyValue(data, func(key []byte, v uint64) {
		if string(key) == "usage_usec" {
			ns := v * 1000
			usec = &ns
		}
	})
	if usec == nil {
		return nil, fmt.Errorf("%s: no usage_usec", filepath.Join(dir, "cpu.stat"))
	}
	return usec, nil
}

// rootMemory reads the memory of the root cgroup, the whole machine's: on
// cgroup v1 the memory hierarchy's root; on cgroup v2, whose root has no
// memory.current, usage is anon + file of the root's memory.stat, as runc
// (and so cAdvisor and the kubelet) computes it there.
func (h hostPaths) rootMemory() (*memStats, error) {
	v1 := filepath.Join(h.cgroup, "memory")
	if _, err := os.Stat(filepath.Join(v1, "memory.usage_in_bytes")); err == nil {
		return memoryV1(v1)
	}
	data, err := os.ReadFile(filepath.Join(h.cgroup, "memory.stat"))
	if err != nil {
		return nil, fmt.Errorf("root memory cgroup: %w", err)
	}
	s := parseMemoryStat(data, false)
	return s.memStats(s.anon+s.file, 0), nil
}
