package cni

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// GC releases everything of sandboxes not in live: namespaces under
// <root>/netns, networks in libcni's cache (through DEL, with the
// configuration they were added with) and the built-in network's host-local
// allocations. It is meant for start-up, once the live sandboxes are known,
// after podsup or the machine died. Sandboxes this manager set up since it
// started, and those being set up or torn down right now, count as live. It
// goes on past a sandbox it cannot release and returns every failure.
func (m *Manager) GC(ctx context.Context, live map[string]bool) error {
	ids, err := m.gcCandidates()
	if err != nil {
		return fmt.Errorf("cni gc: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if live[id] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("cni gc: %w", err))...)
		}
		if err := m.gcSandbox(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// gcCandidates are the sandbox IDs anything under the root directory names,
// sorted.
func (m *Manager) gcCandidates() ([]string, error) {
	seen := map[string]bool{}
	// Namespaces, and the user namespaces of pods with hostUsers: false (a
	// podsup killed between pinning one and the other leaves one alone).
	for _, dir := range []string{m.opts.netnsDir(), m.opts.usernsDir()} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() {
				seen[e.Name()] = true
			}
		}
	}
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("read CNI cache: %w", err)
	}
	for _, a := range atts {
		seen[a.ContainerID] = true
	}
	allocs, err := hostLocalAllocations(m.opts.ipamDir())
	if err != nil {
		return nil, err
	}
	for _, a := range allocs {
		seen[a.owner] = true
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// gcSandbox releases one sandbox that is not live, then any allocation of
// the built-in network still naming it: one whose cache entry and namespace
// were lost, so no DEL knows of it.
func (m *Manager) gcSandbox(ctx context.Context, id string) error {
	if err := validateSandboxID(id); err != nil {
		m.log.Warn("gc: ignoring an entry that names no sandbox", "err", err)
		return nil
	}
	unlock, ok := m.locks.tryLock(id)
	if !ok {
		return nil // being set up or torn down right now
	}
	defer unlock()
	if m.ownedHere(id) {
		return nil
	}
	if err := m.release(ctx, id, ""); err != nil {
		return fmt.Errorf("cni gc: sandbox %s: %w", id, err)
	}
	n, err := releaseAllocations(m.opts.ipamDir(), id)
	if err != nil {
		return fmt.Errorf("cni gc: sandbox %s: %w", id, err)
	}
	if n > 0 {
		m.log.Warn("gc: released addresses that no DEL knew of", "sandbox", id, "count", n)
	}
	return nil
}

// allocation is one address host-local handed out: a file named by the
// address in <dataDir>/<network>/, holding the container ID and, since
// plugins 0.8, a CRLF and the interface name.
type allocation struct {
	path   string
	ip     net.IP
	owner  string
	ifName string
}

// hostLocalAllocations lists the allocations of every network under a
// host-local data directory.
func hostLocalAllocations(dataDir string) ([]allocation, error) {
	nets, err := os.ReadDir(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []allocation
	for _, n := range nets {
		if !n.IsDir() {
			continue
		}
		dir := filepath.Join(dataDir, n.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			// Also skips lock and last_reserved_ip.N.
			ip := net.ParseIP(f.Name())
			if ip == nil || !f.Type().IsRegular() {
				continue
			}
			path := filepath.Join(dir, f.Name())
			data, err := os.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				continue // released since the listing
			}
			if err != nil {
				return nil, err
			}
			owner, ifName, _ := strings.Cut(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
			out = append(out, allocation{path: path, ip: ip, owner: strings.TrimSpace(owner), ifName: strings.TrimSpace(ifName)})
		}
	}
	return out, nil
}

// releaseAllocations deletes the allocations naming owner under a host-local
// data directory, holding each network's lock as host-local does, and
// returns how many there were.
func releaseAllocations(dataDir, owner string) (int, error) {
	allocs, err := hostLocalAllocations(dataDir)
	if err != nil {
		return 0, err
	}
	released := 0
	for _, a := range allocs {
		if a.owner != owner {
			continue
		}
		err := withFileLock(filepath.Join(filepath.Dir(a.path), "lock"), func() error {
			return os.Remove(a.path)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return released, fmt.Errorf("release %s: %w", a.ip, err)
		}
		if err == nil {
			released++
		}
	}
	return released, nil
}

// withFileLock runs f holding an exclusive flock on path, the lock host-local
// takes around its allocations.
func withFileLock(path string, f func() error) error {
	lf, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN)
	return f()
}
