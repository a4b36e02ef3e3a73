// Package runtime runs pods on containerd through its Go client: pause
// sandboxes, containers built from Kubernetes container specs, images, logs
// and exit monitoring, all in podsup's own containerd namespace.
//
// containerd is the only database: every container carries labels (pod,
// container name, spec hash, restart count, the last termination) from which
// the observed state of every pod is rebuilt after podsup restarts.
package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
)

// Errors the supervisor tells apart. Each is wrapped with detail.
var (
	// ErrImagePull is a failed pull (ErrImagePull in a container status).
	ErrImagePull = errors.New("ErrImagePull")
	// ErrImageNeverPull is a missing image with imagePullPolicy Never.
	ErrImageNeverPull = errors.New("ErrImageNeverPull")
	// ErrCreateConfig is a container that cannot be configured as asked,
	// such as runAsNonRoot with an image that runs as root
	// (CreateContainerConfigError).
	ErrCreateConfig = errors.New("CreateContainerConfigError")
	// ErrCreate is a failure of containerd or runc to create or start a
	// container (CreateContainerError).
	ErrCreate = errors.New("CreateContainerError")
	// ErrSandbox is a failure to create the pod sandbox.
	ErrSandbox = errors.New("CreatePodSandboxError")
)

// ContainerState is a container's state as observed in containerd.
type ContainerState int

// The container states.
const (
	// StateCreated is a container that exists but was never started (or
	// whose start was interrupted).
	StateCreated ContainerState = iota
	StateRunning
	StateExited
	// StateUnknown is a container that ran but whose task is gone, as after
	// a reboot: how it ended is not known.
	StateUnknown
)

func (s ContainerState) String() string {
	return [...]string{"created", "running", "exited", "unknown"}[s]
}

// Termination is how a container instance ended.
type Termination struct {
	ExitCode   int32
	Reason     string // Completed, Error, OOMKilled, ContainerStatusUnknown
	Message    string
	StartedAt  time.Time
	FinishedAt time.Time
	ID         string
}

// Sandbox is a pod's pause container.
type Sandbox struct {
	ID          string
	PodUID      string
	Hash        string // the pod-level hash it was created for
	Attempt     int
	Ready       bool // its task is running
	CreatedAt   time.Time
	Pid         uint32
	HostNetwork bool
	NetNS       string   // path of the pod's network namespace; empty for host network
	IPs         []string // pod IPs
	// UserNS maps the pod's IDs to the host's (hostUsers: false); nil in
	// the host's user namespace.
	UserNS *specs.LinuxIDMapping
	// SELinuxLabel is the pause container's SELinux process label, which
	// containers without seLinuxOptions share; empty without SELinux.
	SELinuxLabel string
}

// Container is one instance of one of a pod's containers.
type Container struct {
	ID        string
	SandboxID string
	Name      string
	Init      bool
	Hash      string // hash of the spec it was created from
	// Attempt is the restart count: 0 for the first instance in a sandbox.
	Attempt int
	// PodUID is the UID of the version of the pod it was made for.
	PodUID string
	// RestartBase is the attempt at which that version of the pod first
	// started the container (0 for a container made by an older podsup).
	RestartBase int
	State       ContainerState
	Pid         uint32
	// Backoff is the delay that preceded this instance's start.
	Backoff    time.Duration
	CreatedAt  time.Time
	StartedAt  time.Time // zero if never started
	Image      string    // as the spec names it
	ImageRef   string    // the image's digest reference
	LogPath    string
	StopSignal string
	// Exit is how this instance ended; set when State is StateExited or
	// StateUnknown.
	Exit *Termination
	// Last is how the previous instance ended, carried over in labels.
	Last *Termination
	// User is the identity its process runs with, from its spec; nil for
	// a container made by an older podsup.
	User *v1.LinuxContainerUser
}

// PodState is everything containerd holds for one pod.
type PodState struct {
	Key        string     // namespace/name
	Sandboxes  []*Sandbox // newest (highest attempt) first
	Containers []*Container
}

// Sandbox returns the newest sandbox, or nil.
func (p *PodState) Sandbox() *Sandbox {
	if p == nil || len(p.Sandboxes) == 0 {
		return nil
	}
	return p.Sandboxes[0]
}

// Latest returns the newest instance of the named container in a sandbox,
// or nil.
func (p *PodState) Latest(sandboxID, name string) *Container {
	var latest *Container
	for _, c := range p.Containers {
		if c.SandboxID == sandboxID && c.Name == name && (latest == nil || newer(c, latest)) {
			latest = c
		}
	}
	return latest
}

// newer orders two instances of a container: by restart count, then, for
// the tries of one restart count (a retry after a failed start, or a start
// beside what an interrupted one left), by creation.
func newer(a, b *Container) bool {
	if a.Attempt != b.Attempt {
		return a.Attempt > b.Attempt
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// PodHash is the short hash of a pod key that names its containers and
// directories: the pod's name may be too long for a containerd ID or a path
// element, the hash never is.
func PodHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:6])
}

// SandboxID names a pod's pause container: <podhash>_pause.<attempt>. An
// underscore cannot appear in a container name, so no container ID collides.
func SandboxID(key string, attempt int) string {
	return fmt.Sprintf("%s_pause.%d", PodHash(key), attempt)
}

// ContainerID names a container instance:
// <podhash>_<name>.<sandbox attempt>.<restart count>, and -<retry> after a
// failed start of the same restart count. Names longer than 40 characters
// are cut and made unique with a hash, to stay within containerd's
// 76-character limit.
func ContainerID(key, name string, sandboxAttempt, attempt, retry int) string {
	if len(name) > 40 {
		sum := sha256.Sum256([]byte(name))
		name = strings.TrimRight(name[:31], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	id := fmt.Sprintf("%s_%s.%d.%d", PodHash(key), name, sandboxAttempt, attempt)
	if retry > 0 {
		id += fmt.Sprintf("-%d", retry)
	}
	return id
}
