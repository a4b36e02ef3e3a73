package stats

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// hostPaths are where the kernel's files are: /proc and /sys/fs/cgroup,
// or a tree a test made.
type hostPaths struct {
	proc, cgroup string
}

// meminfo is what podsup reads of /proc/meminfo, in bytes.
type meminfo struct {
	total, free, available uint64
}

// parseMeminfo parses /proc/meminfo, whose sizes are in kB (KiB).
func parseMeminfo(data []byte) (meminfo, error) {
	var m meminfo
	var seen bool
	var f [3][]byte
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if fields(line, f[:]) < 2 {
			continue
		}
		v := atou(f[1]) * 1024
		switch string(f[0]) {
		case "MemTotal:":
			m.total, seen = v, true
		case "MemFree:":
			m.free = v
		case "MemAvailable:":
			m.available = v
		}
	}
	if !seen {
		return m, fmt.Errorf("meminfo: no MemTotal")
	}
	return m, nil
}

// userHZ is the unit of /proc/stat's times: fixed at 100 per second for
// user space whatever the kernel's own tick rate.
const userHZ = 100

// procStat is what podsup reads of /proc/stat.
type procStat struct {
	cpuNanos uint64 // CPU time spent not idle, by all CPUs
	bootTime int64  // seconds since the epoch
}

// parseProcStat parses /proc/stat. Busy time is user + nice + system + irq
// + softirq + steal; idle and iowait are not busy, and guest time is already
// counted in user.
func parseProcStat(data []byte) (procStat, error) {
	var s procStat
	var cpuSeen bool
	var f [9][]byte
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		n := fields(line, f[:])
		switch {
		case n >= 8 && string(f[0]) == "cpu":
			ticks := atou(f[1]) + atou(f[2]) + atou(f[3]) + atou(f[6]) + atou(f[7])
			if n >= 9 {
				ticks += atou(f[8])
			}
			s.cpuNanos, cpuSeen = ticks*(1e9/userHZ), true
		case n >= 2 && string(f[0]) == "btime":
			s.bootTime = int64(atou(f[1]))
		}
	}
	if !cpuSeen {
		return s, fmt.Errorf("/proc/stat: no cpu line")
	}
	return s, nil
}

// netDev is one interface's counters from /proc/<pid>/net/dev.
type netDev struct {
	name                         string
	rxBytes, rxPackets, rxErrors uint64
	txBytes, txPackets, txErrors uint64
}

// parseNetDev parses /proc/<pid>/net/dev, the counters of the interfaces in
// that process's network namespace, skipping those skip names.
func parseNetDev(data []byte, skip func(name string) bool) []netDev {
	var devs []netDev
	var f [11][]byte
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		name, counters, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue // the two header lines
		}
		name = bytes.TrimSpace(name)
		if skip(string(name)) || fields(counters, f[:]) < 11 {
			continue
		}
		// Receive: bytes packets errs drop fifo frame compressed
		// multicast; then transmit: bytes packets errs ...
		devs = append(devs, netDev{name: string(name),
			rxBytes: atou(f[0]), rxPackets: atou(f[1]), rxErrors: atou(f[2]),
			txBytes: atou(f[8]), txPackets: atou(f[9]), txErrors: atou(f[10])})
	}
	return devs
}

// readNetDev reads the interfaces of pid's network namespace (or of the
// host's when pid is 0), leaving out those skip names.
func (h hostPaths) readNetDev(pid uint32, skip func(string) bool) ([]netDev, error) {
	dir := "self"
	if pid != 0 {
		dir = strconv.FormatUint(uint64(pid), 10)
	}
	data, err := os.ReadFile(filepath.Join(h.proc, dir, "net", "dev"))
	if err != nil {
		return nil, fmt.Errorf("network of pid %s: %w", dir, err)
	}
	return parseNetDev(data, skip), nil
}

// rlimit is the machine's task limit and how many tasks exist.
type rlimit struct {
	maxPID, tasks int64
}

// readRlimit reads the number of tasks (threads: each takes a PID) the
// kernel allows, the smaller of kernel.pid_max and kernel.threads-max, and
// how many exist, from /proc/loadavg's fourth field, as the kubelet does.
func (h hostPaths) readRlimit() (rlimit, error) {
	var r rlimit
	r.maxPID = -1
	for _, name := range []string{"pid_max", "threads-max"} {
		v, err := readUint(filepath.Join(h.proc, "sys", "kernel", name))
		if err != nil {
			return r, fmt.Errorf("task limit: %w", err)
		}
		if r.maxPID < 0 || int64(v) < r.maxPID {
			r.maxPID = int64(v)
		}
	}
	data, err := os.ReadFile(filepath.Join(h.proc, "loadavg"))
	if err != nil {
		return r, fmt.Errorf("task count: %w", err)
	}
	tasks, err := parseLoadavgTasks(data)
	if err != nil {
		return r, fmt.Errorf("task count: %w", err)
	}
	r.tasks = tasks
	return r, nil
}

// parseLoadavgTasks reads "runnable/total" in /proc/loadavg, the fourth
// field, and returns the total.
func parseLoadavgTasks(data []byte) (int64, error) {
	var f [5][]byte
	if fields(bytes.TrimSpace(data), f[:]) < 4 {
		return 0, fmt.Errorf("loadavg %q: want 5 fields", data)
	}
	_, total, ok := bytes.Cut(f[3], []byte{'/'})
	if !ok {
		return 0, fmt.Errorf("loadavg %q: no runnable/total field", data)
	}
	v, err := parseUint(total)
	if err != nil {
		return 0, fmt.Errorf("loadavg: %w", err)
	}
	return int64(v), nil
}
