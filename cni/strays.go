package cni

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// strayPlugins lists the processes under procDir (/proc) running a CNI
// command on a namespace under netnsDir: plugins a previous podsup on this
// root directory started. A plugin outlives a podsup killed while it ran,
// and so does the IPAM plugin it runs in turn (both carry the CNI_*
// environment).
func strayPlugins(procDir, netnsDir string) []int {
	want := []byte("CNI_NETNS=" + netnsDir + string(filepath.Separator))
	entries, _ := os.ReadDir(procDir)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		environ, err := os.ReadFile(filepath.Join(procDir, e.Name(), "environ"))
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, v := range bytes.Split(environ, []byte{0}) {
			if bytes.HasPrefix(v, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// waitForStrayPlugins waits, at most timeout, until no plugin a previous
// podsup started runs any more. Our DEL of the same sandbox racing with one
// that is still adding leaves what it adds after the DEL (the bridge
// plugin's masquerade rule, an address), and our next DEL then fails on the
// rule left behind (iptables: "chain busy").
func (m *Manager) waitForStrayPlugins(procDir string, timeout time.Duration) {
	start := m.opts.clock.Now()
	pids := strayPlugins(procDir, m.opts.netnsDir())
	if len(pids) == 0 {
		return
	}
	m.log.Info("waiting for CNI plugins a previous podsup started", "pids", pids)
	for len(pids) > 0 && m.opts.clock.Since(start) < timeout {
		<-m.opts.clock.After(20 * time.Millisecond)
		pids = strayPlugins(procDir, m.opts.netnsDir())
	}
	if len(pids) > 0 {
		m.log.Warn("CNI plugins a previous podsup started still run; going on", "pids", pids, "waited", timeout)
	}
}
