// Package volume makes a pod's volumes and mounts them into its containers:
// hostPath with its type checks, emptyDir on disk or in memory, configMap,
// secret, downwardAPI and projected volumes written atomically from the
// ConfigMaps and Secrets of the manifest directory, and updated in place
// when those change.
package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/podsup/podsup/manifest"
	"github.com/podsup/podsup/podspec"
)

// ErrHostPathType is a hostPath whose type check failed; the container
// waits, and the message says what is there instead.
var ErrHostPathType = errors.New("hostPath type check failed")

// Error is a volume that could not be prepared; Prepare joins one per
// failed volume, so the containers that mount it can be held back alone.
type Error struct {
	Volume string
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("volume %q: %v", e.Volume, e.Err) }

// Unwrap gives podspec.ErrMissingConfig or ErrHostPathType to errors.Is.
func (e *Error) Unwrap() error { return e.Err }

// Failed returns the volumes named in an error from Prepare.
func Failed(err error) map[string]bool {
	failed := map[string]bool{}
	var walk func(error)
	walk = func(err error) {
		var ve *Error
		if errors.As(err, &ve) {
			failed[ve.Volume] = true
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return failed
}

// memorySlack is what a memory-backed emptyDir may hold beyond its
// sizeLimit, so that going over it is seen (and the pod evicted, as the
// kubelet evicts it) rather than only failing writes; the tmpfs is still
// bounded.
const memorySlack = 4 << 20

// Images gives image volumes their content.
type Images interface {
	// MountImage makes the content of src's image readable at dir,
	// read-only, pulled as its policy says with the pod's pull secrets.
	MountImage(ctx context.Context, podKey, volume string, src *v1.ImageVolumeSource, secrets []*v1.Secret, dir string) error
}

// Manager makes and refreshes pods' volumes.
type Manager struct {
	podDir func(key string) string
	clock  clock.PassiveClock
	log    *slog.Logger
	images Images // nil: image volumes fail

	mu sync.Mutex // serialises work on one pod's volumes with its cleanup
}

// Option configures a Manager.
type Option func(*Manager)

// WithClock sets the clock.
func WithClock(c clock.PassiveClock) Option { return func(m *Manager) { m.clock = c } }

// WithImages sets what mounts image volumes.
func WithImages(i Images) Option { return func(m *Manager) { m.images = i } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// New returns a manager that keeps volumes under podDir(key)/volumes.
func New(podDir func(key string) string, opts ...Option) *Manager {
	m := &Manager{podDir: podDir, clock: clock.RealClock{}, log: slog.Default()}
	for _, o := range opts {
		o(m)
	}
	return m
}

func podKey(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }

func (m *Manager) volumesDir(key string) string { return filepath.Join(m.podDir(key), "volumes") }

func (m *Manager) volumeDir(key, name string) string { return filepath.Join(m.volumesDir(key), name) }

// fsGroup is the pod's fsGroup, or -1.
func fsGroup(pod *v1.Pod) int64 {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		return *sc.FSGroup
	}
	return -1
}

// Prepare makes the pod's volumes and brings projected ones up to date.
// It is called on every sync: unchanged volumes cost a comparison, a
// changed ConfigMap, Secret or label is swapped in atomically without
// restarting anything, and volumes the pod no longer declares are removed.
// The error names the volume and wraps podspec.ErrMissingConfig or ErrHostPathType
// when the pod must wait.
func (m *Manager) Prepare(ctx context.Context, pod *v1.Pod, cfg podspec.Objects, info podspec.PodInfo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := podKey(pod)
	if err := os.MkdirAll(m.volumesDir(key), 0o755); err != nil {
		return err
	}
	declared := map[string]bool{}
	var errs []error
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		declared[vol.Name] = true
		if err := m.prepare(ctx, pod, vol, cfg, info); err != nil {
			errs = append(errs, &Error{Volume: vol.Name, Err: err})
		}
	}
	entries, _ := os.ReadDir(m.volumesDir(key))
	for _, e := range entries {
		if !declared[e.Name()] {
			m.log.Info("removing a volume the pod no longer declares", "pod", key, "volume", e.Name())
			if err := RemoveAll(filepath.Join(m.volumesDir(key), e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) prepare(ctx context.Context, pod *v1.Pod, vol *v1.Volume, cfg podspec.Objects, info podspec.PodInfo) error {
	key := podKey(pod)
	dir := m.volumeDir(key, vol.Name)
	gid := fsGroup(pod)
	switch {
	case vol.HostPath != nil:
		return checkHostPath(vol.HostPath)
	case vol.EmptyDir != nil:
		return m.emptyDir(pod, dir, vol.EmptyDir, gid)
	case vol.Image != nil:
		return m.image(ctx, pod, vol, dir, cfg)
	}
	files, ok, err := payload(pod, &vol.VolumeSource, cfg, info)
	if err != nil || !ok {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Secrets, and projections that may hold them, never touch a disk.
	if vol.Secret != nil || vol.Projected != nil {
		if err := mountTmpfs(dir, 0); err != nil {
			return err
		}
	}
	changed, err := writeAtomic(dir, files, gid, m.clock.Now())
	if changed && err == nil {
		m.log.Info("volume updated", "pod", key, "volume", vol.Name, "files", len(files))
	}
	return err
}

// image mounts an image volume once: the kubelet resolves the image when
// the pod starts, and a later change of the image does not reach a running
// pod.
func (m *Manager) image(ctx context.Context, pod *v1.Pod, vol *v1.Volume, dir string, cfg podspec.Objects) error {
	if isMountPoint(dir) {
		return nil
	}
	if m.images == nil {
		return errors.New("image volumes need containerd, which this volume manager was not given")
	}
	var secrets []*v1.Secret
	for _, ref := range pod.Spec.ImagePullSecrets {
		if s, ok := cfg.Secrets[pod.Namespace+"/"+ref.Name]; ok {
			secrets = append(secrets, s)
		}
	}
	if err := m.images.MountImage(ctx, podKey(pod), vol.Name, vol.Image, secrets, dir); err != nil {
		return fmt.Errorf("image %s: %w", vol.Image.Reference, err)
	}
	m.log.Info("image volume mounted", "pod", podKey(pod), "volume", vol.Name, "image", vol.Image.Reference)
	return nil
}

// emptyDir makes an emptyDir: a directory under the pod's directory, a
// tmpfs for medium Memory, whose size is bounded a little above sizeLimit,
// or a hugetlbfs of the pod's page size for medium HugePages.
func (m *Manager) emptyDir(pod *v1.Pod, dir string, ed *v1.EmptyDirVolumeSource, gid int64) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	size, err := manifest.EmptyDirHugePageSize(pod, ed.Medium)
	if err != nil {
		return err
	}
	if size > 0 {
		if err := mountHugetlbfs(dir, size); err != nil {
			return err
		}
	} else if ed.Medium == v1.StorageMediumMemory {
		size := int64(0)
		if ed.SizeLimit != nil {
			size = ed.SizeLimit.Value() + memorySlack
		}
		if err := mountTmpfs(dir, size); err != nil {
			return err
		}
	}
	// As the kubelet: writable by everyone, or by the fsGroup with the
	// setgid bit so new files stay in the group.
	perm := fs.FileMode(0o777)
	if gid >= 0 {
		if err := os.Chown(dir, -1, int(gid)); err != nil {
			return err
		}
		perm = 0o2775 | fs.ModeSetgid
	}
	return os.Chmod(dir, perm)
}

// checkHostPath applies a hostPath's type, creating what the *OrCreate
// types create.
func checkHostPath(h *v1.HostPathVolumeSource) error {
	typ := v1.HostPathUnset
	if h.Type != nil {
		typ = *h.Type
	}
	info, err := os.Stat(h.Path)
	exists := err == nil
	switch typ {
	case v1.HostPathUnset:
		return nil
	case v1.HostPathDirectoryOrCreate:
		if !exists {
			return os.MkdirAll(h.Path, 0o755)
		}
		if !info.IsDir() {
			return fmt.Errorf("%w: %s exists and is not a directory", ErrHostPathType, h.Path)
		}
		return nil
	case v1.HostPathFileOrCreate:
		if !exists {
			f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("%w: create %s: %v", ErrHostPathType, h.Path, err)
			}
			return f.Close()
		}
		if info.IsDir() {
			return fmt.Errorf("%w: %s exists and is a directory, not a file", ErrHostPathType, h.Path)
		}
		return nil
	}
	if !exists {
		return fmt.Errorf("%w: %s does not exist (type %s)", ErrHostPathType, h.Path, typ)
	}
	ok := map[v1.HostPathType]func(fs.FileMode) bool{
		v1.HostPathDirectory: fs.FileMode.IsDir,
		v1.HostPathFile:      fs.FileMode.IsRegular,
		v1.HostPathSocket:    func(m fs.FileMode) bool { return m&fs.ModeSocket != 0 },
		v1.HostPathCharDev:   func(m fs.FileMode) bool { return m&fs.ModeCharDevice != 0 },
		v1.HostPathBlockDev:  func(m fs.FileMode) bool { return m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0 },
	}[typ]
	if ok == nil || !ok(info.Mode()) {
		return fmt.Errorf("%w: %s is %s, not a %s", ErrHostPathType, h.Path, describeMode(info.Mode()), typ)
	}
	return nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a file"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "something else"
}

// Mounts returns a container's volume mounts. env expands subPathExpr.
// Volumes made from objects (configMap, secret, downwardAPI, projected) are
// mounted read-only, as the kubelet mounts them.
func (m *Manager) Mounts(pod *v1.Pod, c *v1.Container, env []string) ([]specs.Mount, error) {
	key := podKey(pod)
	vols := map[string]*v1.Volume{}
	for i := range pod.Spec.Volumes {
		vols[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var mounts []specs.Mount
	for _, vm := range c.VolumeMounts {
		vol := vols[vm.Name]
		if vol == nil {
			return nil, fmt.Errorf("volume %q is not defined", vm.Name)
		}
		src := m.volumeDir(key, vm.Name)
		if vol.HostPath != nil {
			src = vol.HostPath.Path
		}
		readOnly := vm.ReadOnly || vol.ConfigMap != nil || vol.Secret != nil || vol.DownwardAPI != nil || vol.Projected != nil || vol.Image != nil
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expandEnv(vm.SubPathExpr, env)
		}
		if sub != "" {
			full, err := subPath(src, sub, vol.HostPath != nil || vol.EmptyDir != nil)
			if err != nil {
				return nil, fmt.Errorf("volumeMount %q subPath %q: %w", vm.Name, sub, err)
			}
			src = full
		}
		opts := []string{"rbind", propagation(vm.MountPropagation)}
		if readOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		if vol.Image != nil {
			// As Kubernetes documents image volumes: read-only and noexec.
			opts = append(opts, "noexec")
		}
		mounts = append(mounts, specs.Mount{Destination: vm.MountPath, Type: "bind", Source: src, Options: opts})
	}
	return mounts, nil
}

// propagation is the mount option for a mountPropagation mode.
func propagation(mode *v1.MountPropagationMode) string {
	if mode == nil {
		return "rprivate"
	}
	switch *mode {
	case v1.MountPropagationHostToContainer:
		return "rslave"
	case v1.MountPropagationBidirectional:
		return "rshared"
	}
	return "rprivate"
}

// subPath resolves a subPath inside a volume without following a symlink
// out of it, creating it as a directory where the kubelet does (hostPath and
// emptyDir).
func subPath(root, sub string, create bool) (string, error) {
	full, err := securejoin.SecureJoin(root, sub)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(full); errors.Is(err, fs.ErrNotExist) {
		if !create {
			return "", fmt.Errorf("%s does not exist in the volume", sub)
		}
		if err := os.MkdirAll(full, 0o755); err != nil {
			return "", err
		}
	}
	return full, nil
}

// expandEnv expands $(VAR) in a subPathExpr.
func expandEnv(s string, env []string) string {
	vals := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vals[k] = v
		}
	}
	for k, v := range vals {
		s = strings.ReplaceAll(s, "$("+k+")", v)
	}
	return s
}

// Cleanup removes a pod's volumes, unmounting the in-memory ones.
func (m *Manager) Cleanup(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return RemoveAll(m.volumesDir(key))
}

// Exceeded reports the first emptyDir of the pod whose usage is over its
// sizeLimit, with the kubelet's eviction message.
func (m *Manager) Exceeded(pod *v1.Pod) (string, bool) {
	key := podKey(pod)
	for _, vol := range pod.Spec.Volumes {
		if vol.EmptyDir == nil || vol.EmptyDir.SizeLimit == nil {
			continue
		}
		used := usage(m.volumeDir(key, vol.Name))
		if used > vol.EmptyDir.SizeLimit.Value() {
			return fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q.", vol.Name, vol.EmptyDir.SizeLimit.String()), true
		}
	}
	return "", false
}

// usage is the disk or memory a directory tree takes, in bytes.
func usage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			total += blocks(info)
		}
		return nil
	})
	return total
}
