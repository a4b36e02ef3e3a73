package runtime

import (
	"strconv"
	"strings"
	"time"
)

// Labels podsup sets on its containers in containerd. They are how podsup
// finds its pods again after a restart.
const (
	labelPrefix      = "podsup.io/"
	LabelPodKey      = labelPrefix + "pod"           // namespace/name
	LabelPodUID      = labelPrefix + "pod-uid"       // the static pod's UID when created
	LabelKind        = labelPrefix + "kind"          // "sandbox" or "container"
	LabelSandboxID   = labelPrefix + "sandbox"       // a container's sandbox
	LabelName        = labelPrefix + "container"     // the container's name in the pod
	LabelInit        = labelPrefix + "init"          // "true" for init containers
	LabelHash        = labelPrefix + "hash"          // spec hash (pod-level for sandboxes)
	LabelAttempt     = labelPrefix + "attempt"       // restart count, or sandbox attempt
	LabelRestartBase = labelPrefix + "restart-base"  // the attempt this version of the pod started the container at
	LabelBackoff     = labelPrefix + "backoff"       // delay before this start, as a Go duration
	LabelStartedAt   = labelPrefix + "started-at"    // set once the task started
	LabelLogPath     = labelPrefix + "log"           // the CRI log file
	LabelImage       = labelPrefix + "image"         // the image as the spec names it
	LabelImageID     = labelPrefix + "image-id"      // repository@digest of the image it was made from
	LabelStopSignal  = labelPrefix + "stop-signal"   // the image's stop signal
	LabelHostNetwork = labelPrefix + "host-network"  // "true" for hostNetwork sandboxes
	LabelNetNS       = labelPrefix + "netns"         // the pod network namespace
	LabelIPs         = labelPrefix + "ips"           // comma-separated pod IPs
	LabelCgroupsPath = labelPrefix + "cgroups-path"  // for reading OOM kills
	LabelUserNS      = labelPrefix + "userns"        // a sandbox's ID mapping, 0:<host ID>:<size>
	LabelSELinux     = labelPrefix + "selinux"       // a sandbox's SELinux process label
	LabelUser        = labelPrefix + "user"          // the process's uid:gid:groups, as its spec has them
	labelLogFallback = labelPrefix + "log-fallback"  // "true": terminationMessagePolicy FallbackToLogsOnError
	labelTTY         = labelPrefix + "tty"           // "true" when the container has a terminal
	labelLastPrefix  = labelPrefix + "last-"         // the previous instance's termination
	labelLastExit    = labelLastPrefix + "exit-code" //
	labelLastReason  = labelLastPrefix + "reason"
	labelLastMessage = labelLastPrefix + "message"
	labelLastStarted = labelLastPrefix + "started-at"
	labelLastEnded   = labelLastPrefix + "finished-at"
	labelLastID      = labelLastPrefix + "id"

	kindSandbox   = "sandbox"
	kindContainer = "container"
	// kindOrphan marks the stand-in record the sweep makes for a task whose
	// container is gone: containerd reaches a task only through its
	// container. It is no one's container.
	kindOrphan = "orphan"
)

// maxLabelMessage bounds a termination message kept in a label.
const maxLabelMessage = 1024

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

// lastLabels records a termination as the labels of the next instance.
func lastLabels(t *Termination) map[string]string {
	if t == nil {
		return nil
	}
	msg := t.Message
	if len(msg) > maxLabelMessage {
		msg = msg[len(msg)-maxLabelMessage:]
	}
	return map[string]string{
		labelLastExit:    strconv.Itoa(int(t.ExitCode)),
		labelLastReason:  t.Reason,
		labelLastMessage: msg,
		labelLastStarted: formatTime(t.StartedAt),
		labelLastEnded:   formatTime(t.FinishedAt),
		labelLastID:      t.ID,
	}
}

// parseLast reads the previous instance's termination from labels.
func parseLast(labels map[string]string) *Termination {
	code, ok := labels[labelLastExit]
	if !ok {
		return nil
	}
	return &Termination{
		ExitCode:   int32(atoi(code)),
		Reason:     labels[labelLastReason],
		Message:    labels[labelLastMessage],
		StartedAt:  parseTime(labels[labelLastStarted]),
		FinishedAt: parseTime(labels[labelLastEnded]),
		ID:         labels[labelLastID],
	}
}

func splitIPs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// imageID is an image's repository and digest, as the kubelet reports a
// container's imageID: docker.io/library/busybox@sha256:... .
func imageID(name, digest string) string {
	repo, _, _ := strings.Cut(name, "@")
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	return repo + "@" + digest
}
