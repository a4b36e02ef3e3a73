package runtime

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	aaprofile "github.com/containerd/containerd/v2/contrib/apparmor"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/podspec"
)

// appArmorProfiles lists the profiles loaded in the kernel, one a line:
// "name (mode)".
const appArmorProfiles = "/sys/kernel/security/apparmor/profiles"

// hostAppArmor is what podsup does with AppArmor here, or nil where the
// host does not enforce it (the test containerd's own: the module loaded
// and enabled, apparmor_parser installed).
func hostAppArmor() *podspec.AppArmor {
	if !apparmor.HostSupports() {
		return nil
	}
	return &podspec.AppArmor{LoadDefault: aaprofile.LoadDefaultProfile, Loaded: appArmorLoaded}
}

// appArmorLoaded reports whether the kernel has a profile of that name.
func appArmorLoaded(name string) (bool, error) {
	f, err := os.Open(appArmorProfiles)
	if err != nil {
		return false, fmt.Errorf("list loaded AppArmor profiles: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.LastIndex(line, " ("); i >= 0 && line[:i] == name {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", appArmorProfiles, err)
	}
	return false, nil
}

// hostSELinux is how podsup labels for SELinux here, or nil where the host
// does not enforce it.
func hostSELinux() *podspec.SELinux {
	if !selinux.GetEnabled() {
		return nil
	}
	return &podspec.SELinux{Labels: label.InitLabels, Options: selinux.DupSecOpt}
}

// Admit says whether this host can run a pod as it asks (its AppArmor
// profiles, its hugepages); when not, a reason and a message, and the pod
// waits.
func (r *Runtime) Admit(pod *v1.Pod) (ok bool, reason, message string) {
	if ok, reason, message := r.node.Admit(pod); !ok {
		return false, reason, message
	}
	return admitHugePages(pod, hostHugePages(hugepagesDir))
}

// labelUser records, as the last of a container's spec options, the user
// and groups its process will have (LabelUser), for its status: what the
// image's /etc/passwd and /etc/group, runAsUser, runAsGroup and the
// supplemental groups came to.
func labelUser(_ context.Context, _ oci.Client, c *containers.Container, s *oci.Spec) error {
	if s.Process == nil {
		return nil
	}
	u := s.Process.User
	groups := make([]string, len(u.AdditionalGids))
	for i, g := range u.AdditionalGids {
		groups[i] = strconv.FormatUint(uint64(g), 10)
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	c.Labels[LabelUser] = fmt.Sprintf("%d:%d:%s", u.UID, u.GID, strings.Join(groups, ","))
	return nil
}

// parseUser reads LabelUser; nil if it is absent or malformed.
func parseUser(s string) *v1.LinuxContainerUser {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return nil
	}
	uid, err1 := strconv.ParseInt(f[0], 10, 64)
	gid, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return nil
	}
	u := &v1.LinuxContainerUser{UID: uid, GID: gid}
	for _, g := range strings.FieldsFunc(f[2], func(r rune) bool { return r == ',' }) {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return nil
		}
		u.SupplementalGroups = append(u.SupplementalGroups, n)
	}
	return u
}
