//go:build integration

package volumes

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/opencontainers/selinux/go-selinux"
	v1 "k8s.io/api/core/v1"

	"github.com/podsup/podsup/cgroups"
	"github.com/podsup/podsup/e2e/harness"
	"github.com/podsup/podsup/internal/testenv"
)

// TestAppArmor: pods ask for AppArmor profiles in the pod's and the
// container's fields and in the deprecated annotation. On a host without
// AppArmor, as the kubelet does, RuntimeDefault and Localhost are refused
// with reason AppArmor (the pod waits, nothing is created), while
// Unconfined and no profile at all run. On a host with AppArmor, the
// default runs under containerd's profile, Unconfined under none, and a
// Localhost profile the kernel lacks stops the container's creation.
func TestAppArmor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ran := "echo ran; " + harness.IdleCmd
	runtimeDefault := "  securityContext: {appArmorProfile: {type: RuntimeDefault}}\n"
	e.Write("aa-default.yaml", harness.ScriptPod("aa-default", runtimeDefault, "", ran))
	e.Write("aa-local.yaml", strings.Replace(harness.ScriptPod("aa-local", "", "", ran), "metadata: {name: aa-local}",
		"metadata:\n  name: aa-local\n  annotations: {container.apparmor.security.beta.kubernetes.io/c: localhost/podsup-e2e-missing}", 1))
	e.Write("aa-unconfined.yaml", harness.ScriptPod("aa-unconfined", runtimeDefault, "    securityContext: {appArmorProfile: {type: Unconfined}}\n", ran))
	e.Write("aa-none.yaml", harness.ScriptPod("aa-none", "", "", ran))
	e.Start()

	e.waitLog("aa-unconfined", "c", "ran")
	e.waitLog("aa-none", "c", "ran")
	if !apparmor.HostSupports() {
		for pod, field := range map[string]string{
			"aa-default": "spec.securityContext.appArmorProfile asks for RuntimeDefault",
			"aa-local":   `metadata.annotations[container.apparmor.security.beta.kubernetes.io/c] asks for the Localhost profile "podsup-e2e-missing"`,
		} {
			p := e.WaitPod(pod, "refused for AppArmor", func(p v1.Pod) bool { return p.Status.Reason == "AppArmor" })
			if p.Status.Phase != v1.PodPending || !strings.HasPrefix(p.Status.Message, "Cannot enforce AppArmor: AppArmor is not enabled on the host") ||
				!strings.Contains(p.Status.Message, field) {
				t.Errorf("%s: %s, %s: %q; want Pending, the kubelet's words and %q", pod, p.Status.Phase, p.Status.Reason, p.Status.Message, field)
			}
			if id := harness.ContainerStatus(p, "c").ContainerID; id != "" {
				t.Errorf("%s: container %s was created for a refused pod", pod, id)
			}
		}
		t.Logf("host without AppArmor: RuntimeDefault and Localhost refused, Unconfined and none run")
		return
	}
	e.waitLog("aa-default", "c", "ran")
	for pod, want := range map[string]string{"aa-default": "cri-containerd.apparmor.d (enforce)", "aa-none": "cri-containerd.apparmor.d (enforce)", "aa-unconfined": "unconfined"} {
		if got := e.securityLabel(pod); got != want {
			t.Errorf("%s runs under AppArmor %q, want %q", pod, got, want)
		}
	}
	e.WaitPod("aa-local", "creation refused", func(p v1.Pod) bool {
		_, msg := harness.Waiting(p, "c")
		return strings.Contains(msg, `AppArmor profile "podsup-e2e-missing" is not loaded on this host`)
	})
}

// TestSELinuxOptions: seLinuxOptions of the pod and of a container are
// the process label of its processes where the host enforces SELinux; on a
// host without it, as this one, the pod runs and podsup's log says they
// were ignored, naming the pod.
func TestSELinuxOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.Write("labelled.yaml", harness.ScriptPod("labelled", "  securityContext: {seLinuxOptions: {level: \"s0:c123,c456\"}}\n",
		"    securityContext: {seLinuxOptions: {type: container_t, level: \"s0:c123,c456\"}}\n", "echo ran; "+harness.IdleCmd))
	e.Start()
	e.waitLog("labelled", "c", "ran")
	if !selinux.GetEnabled() {
		harness.WaitFor(t, "podsup's log to say seLinuxOptions were ignored", func() bool {
			data, _ := os.ReadFile(e.ProcLog.Name())
			return strings.Contains(string(data), `msg="seLinuxOptions ignored: this host does not enforce SELinux" pod=default/labelled-node1`)
		})
		return
	}
	if got := e.securityLabel("labelled"); !strings.HasSuffix(got, ":container_t:s0:c123,c456") {
		t.Errorf("the container runs as %q, want type container_t at level s0:c123,c456", got)
	}
}

// procFile reads a file of /proc/<pid> of a pod's running container.
func (e *env) procFile(pod v1.Pod, container, name string) []byte {
	e.t.Helper()
	id := strings.TrimPrefix(harness.ContainerStatus(pod, container).ContainerID, "containerd://")
	task, ok := e.Tasks()[id]
	if !ok {
		e.t.Fatalf("%s: no running task for container %q", pod.Name, id)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", task.PID, name))
	if err != nil {
		e.t.Fatal(err)
	}
	return data
}

// securityLabel is the AppArmor profile or SELinux label container c of a
// pod runs under (the LSM's /proc/<pid>/attr/current).
func (e *env) securityLabel(pod string) string {
	return strings.TrimSpace(strings.TrimRight(string(e.procFile(e.Pod(pod), "c", "attr/current")), "\x00"))
}

// TestSupplementalGroupsPolicy: the image's /etc/group puts its user,
// nobody, in group staff (50). With the default policy (Merge) the
// container's process is in staff and the pod's supplementalGroups; with
// Strict, in the pod's supplementalGroups only; status.containerStatuses[]
// .user.linux shows the same.
func TestSupplementalGroupsPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, err := testenv.Busybox()
	if err != nil {
		testenv.Unavailable(t, "busybox test image: %v", err)
	}
	b.Ref, b.Config.User = "podsup.test/busybox-staff:1", "nobody"
	for i, f := range b.Files {
		if f.Path == "/etc/group" {
			b.Files[i].Data = []byte("root:x:0:\nstaff:x:50:nobody\nnogroup:x:65534:\n")
		}
	}
	if _, err := b.Import(e.Ctx, e.Client, testenv.Snapshotter); err != nil {
		t.Fatal(err)
	}
	pod := func(name, policy string) string {
		return strings.Replace(harness.ScriptPod(name, "  securityContext: {supplementalGroups: [600]"+policy+"}\n", "", `echo "groups $(id -G)"; `+harness.IdleCmd),
			testenv.BusyboxRef, "podsup.test/busybox-staff:1", 1)
	}
	e.Write("merge.yaml", pod("merge", ""))
	e.Write("strict.yaml", pod("strict", ", supplementalGroupsPolicy: Strict"))
	e.Start()
	for name, want := range map[string]struct {
		out    string
		groups []int64
	}{"merge": {" F groups 65534 50 600\n", []int64{65534, 50, 600}}, "strict": {" F groups 65534 600\n", []int64{65534, 600}}} {
		if logs := e.waitLog(name, "c", "groups "); !strings.Contains(logs, want.out) {
			t.Errorf("%s: container output lacks %q\n%s", name, strings.TrimSpace(want.out), logs)
		}
		// The status says the same, as the kubelet reports it from the CRI.
		wantUser := &v1.LinuxContainerUser{UID: 65534, GID: 65534, SupplementalGroups: want.groups}
		if u := harness.ContainerStatus(e.Pod(name), "c").User; u == nil || !reflect.DeepEqual(u.Linux, wantUser) {
			t.Errorf("%s: status user %+v, want linux %+v", name, u, wantUser)
		}
	}
}

// TestSysctls: a pod may set the kubelet's safe sysctls and those
// --allowed-unsafe-sysctls allows (kernel.msg* here), and sees them set in
// its namespaces; a pod setting another waits, reason SysctlForbidden, the
// sysctl named, as the kubelet's admission refuses it; one that is not
// namespaced is refused whatever the flag says.
func TestSysctls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pod := func(name, sysctl, value, file string) string {
		return harness.ScriptPod(name, fmt.Sprintf("  securityContext: {sysctls: [{name: %s, value: %q}]}\n", sysctl, value), "",
			"echo \"value $(cat "+file+")\"; "+harness.IdleCmd)
	}
	e.Write("safe.yaml", pod("safe", "net.ipv4.ip_unprivileged_port_start", "100", "/proc/sys/net/ipv4/ip_unprivileged_port_start"))
	e.Write("allowed.yaml", pod("allowed", "kernel.msgmax", "12345", "/proc/sys/kernel/msgmax"))
	e.Write("unsafe.yaml", pod("unsafe", "net.core.somaxconn", "1000", "/proc/sys/net/core/somaxconn"))
	e.Write("host.yaml", pod("host", "vm.swappiness", "10", "/proc/sys/vm/swappiness"))
	e.Start("--allowed-unsafe-sysctls", "kernel.msg*,net.ipv6.*")
	e.waitLog("safe", "c", " F value 100\n")
	e.waitLog("allowed", "c", " F value 12345\n")
	for name, want := range map[string]string{
		"unsafe": `forbidden sysctl: "net.core.somaxconn" not allowlisted`,
		"host":   `forbidden sysctl: "vm.swappiness" not namespaced`,
	} {
		p := e.WaitPod(name, "refused for its sysctl", func(p v1.Pod) bool { return p.Status.Reason == "SysctlForbidden" })
		if p.Status.Phase != v1.PodPending || !strings.HasPrefix(p.Status.Message, want) || harness.ContainerStatus(p, "c").ContainerID != "" {
			t.Errorf("%s: %s, %s: %q, container %q; want Pending, %q, nothing created", name, p.Status.Phase, p.Status.Reason, p.Status.Message,
				harness.ContainerStatus(p, "c").ContainerID, want)
		}
	}
}

// TestSeccompLocalhost: a Localhost seccomp profile is read from
// --seccomp-profile-root (the kubelet's /var/lib/kubelet/seccomp unless
// set) and confines the container: mkdir fails with EPERM under a profile
// that denies it. A profile that is not there keeps the container from
// being created, naming the file.
func TestSeccompLocalhost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`
	if err := os.WriteFile(filepath.Join(root, "profiles", "no-mkdir.json"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := func(name, file string) string {
		return harness.ScriptPod(name, "  securityContext: {seccompProfile: {type: Localhost, localhostProfile: "+file+"}}\n", "",
			`echo "mkdir: $(mkdir /tmp/d 2>&1 && echo made)"; `+harness.IdleCmd)
	}
	e.Write("confined.yaml", pod("confined", "profiles/no-mkdir.json"))
	e.Write("missing.yaml", pod("missing", "profiles/absent.json"))
	e.Start("--seccomp-profile-root", root)
	// One line carries mkdir's outcome: stdout and stderr are separate
	// streams, so their order in the log is not the order written.
	if logs := e.waitLog("confined", "c", " F mkdir: "); !strings.Contains(logs, "Operation not permitted\n") {
		t.Errorf("mkdir was not refused with EPERM under the profile:\n%s", logs)
	}
	e.WaitPod("missing", "creation refused naming the profile", func(p v1.Pod) bool {
		_, msg := harness.Waiting(p, "c")
		return strings.Contains(msg, filepath.Join(root, "profiles", "absent.json"))
	})
}

// TestHugePages: with 2 MiB pages reserved on the host (the test reserves
// 8 and gives the old count back), a container's hugepages-2Mi limit is its
// hugetlb limit where the host has the hugetlb controller (and is left out,
// with a warning in podsup's log, where it has not, as on this machine) and
// an emptyDir of medium HugePages is a hugetlbfs of 2 MiB pages; a pod
// asking for more than the host reserves, or for a size it has not, waits
// with reason OutOfhugepages-<size>.
func TestHugePages(t *testing.T) {
	const nr = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
	old, err := os.ReadFile(nr)
	if err != nil {
		testenv.Unavailable(t, "no 2 MiB hugepages: %v", err)
	}
	before, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	t.Cleanup(func() {
		if err := os.WriteFile(nr, old, 0o644); err != nil {
			t.Errorf("give back the reserved hugepages: %v", err)
		}
	})
	if err := os.WriteFile(nr, []byte(strconv.Itoa(before+8)), 0o644); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile(nr); strings.TrimSpace(string(now)) != strconv.Itoa(before+8) {
		testenv.Unavailable(t, "the kernel reserved %s pages of 2 MiB, not %d", strings.TrimSpace(string(now)), before+8)
	}
	e := newEnv(t)
	pod := func(name, limit string) string {
		return harness.ScriptPod(name, "  volumes: [{name: hp, emptyDir: {medium: HugePages}}]\n",
			"    resources: {limits: {"+limit+", memory: 64Mi}}\n    volumeMounts: [{name: hp, mountPath: /hp}]\n",
			`echo "mount $(grep ' /hp ' /proc/mounts)"; `+harness.IdleCmd)
	}
	e.Write("hp.yaml", pod("hp", "hugepages-2Mi: 4Mi"))
	e.Write("too-many.yaml", pod("too-many", "hugepages-2Mi: 1Gi"))
	e.Write("no-size.yaml", pod("no-size", "hugepages-1Gi: 1Gi"))
	e.Start()
	if logs := e.waitLog("hp", "c", "mount "); !strings.Contains(logs, " /hp hugetlbfs ") || !strings.Contains(logs, "pagesize=2M") {
		t.Errorf("/hp is not a hugetlbfs of 2 MiB pages:\n%s", logs)
	}
	id := strings.TrimPrefix(harness.ContainerStatus(e.Pod("hp"), "c").ContainerID, "containerd://")
	c, err := e.Client.LoadContainer(e.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cgroups.HasController(cgroups.Root, "hugetlb") {
		if got := spec.Linux.Resources.HugepageLimits; len(got) != 1 || got[0].Pagesize != "2MB" || got[0].Limit != 4<<20 {
			t.Errorf("hugetlb limits %+v, want 4 MiB of 2MB pages", got)
		}
	} else {
		if got := spec.Linux.Resources.HugepageLimits; got != nil {
			t.Errorf("hugetlb limits %+v on a host without the controller, which runc refuses", got)
		}
		if data, _ := os.ReadFile(e.ProcLog.Name()); !strings.Contains(string(data), "the hugetlb cgroup controller is not available") {
			t.Error("podsup's log does not say that hugepages limits are not set")
		}
	}
	for name, want := range map[string]string{
		"too-many": "Node didn't have enough resource: hugepages-2Mi, requested: 1073741824, capacity: " + strconv.Itoa((before+8)<<21),
		"no-size":  "Node didn't have enough resource: hugepages-1Gi, requested: 1073741824, capacity: 0; the host has no hugepages of that size",
	} {
		p := e.WaitPod(name, "refused", func(p v1.Pod) bool { return strings.HasPrefix(p.Status.Reason, "OutOf") })
		if p.Status.Phase != v1.PodPending || !strings.HasPrefix(p.Status.Message, want) {
			t.Errorf("%s: %s, %s: %q; want Pending and %q", name, p.Status.Phase, p.Status.Reason, p.Status.Message, want)
		}
	}
}
