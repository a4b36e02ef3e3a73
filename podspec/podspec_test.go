package podspec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// rootfs is a container root with the /etc/passwd and /etc/group that
// oci.WithUser and oci.WithAdditionalGIDs read.
func rootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nwheel:x:10:root\napp:x:1000:\naudio:x:29:app\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// apply applies options to containerd's default spec of a container whose
// root is a directory, as containerd does when it creates one.
func apply(t *testing.T, opts ...oci.SpecOpts) *oci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "podspec-test")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, append([]oci.SpecOpts{oci.WithRootFSPath(rootfs(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "app", Image: "busybox",
			Command: []string{"/bin/sh", "-c"}, Args: []string{"echo $(GREETING) $$(HOME)"},
			TerminationMessagePath: "/dev/termination-log",
		}}},
	}
}

func testContainer(pod *v1.Pod) Container {
	return Container{
		Pod: pod, Container: &pod.Spec.Containers[0],
		Sandbox: Sandbox{ID: "sb1", Pid: 4242, NetNS: "/run/netns/p1"},
		Image:   ocispec.ImageConfig{Env: []string{"PATH=/bin", "GREETING=image"}, Cmd: []string{"sh"}, WorkingDir: "/srv"},
		Env:     []string{"GREETING=hello"},
		Mounts:  []specs.Mount{bindMount("/var/lib/podsup/pods/p1/volumes/data", "/data", false)},
		Files: PodFiles{Hosts: "/pods/p1/etc-hosts", ResolvConf: "/pods/p1/resolv.conf",
			Hostname: "/pods/p1/hostname", Shm: "/pods/p1/shm"},
		CgroupsPath:     "/podsup/besteffort/podabc/c1",
		TerminationFile: "/pods/p1/termination/c1",
	}
}

var node = Node{MemoryCapacity: 8 << 30, OOMFloor: 0, SeccompDir: "/var/lib/podsup/seccomp"}

func containerSpec(t *testing.T, in Container) *oci.Spec {
	t.Helper()
	opts, err := node.ContainerSpec(in)
	if err != nil {
		t.Fatal(err)
	}
	return apply(t, opts...)
}

func mountAt(s *oci.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func namespace(s *oci.Spec, typ specs.LinuxNamespaceType) (string, bool) {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			return ns.Path, true
		}
	}
	return "", false
}

func TestContainerSpec(t *testing.T) {
	s := containerSpec(t, testContainer(testPod()))
	if want := []string{"/bin/sh", "-c", "echo hello $(HOME)"}; !slices.Equal(s.Process.Args, want) {
		t.Errorf("args %q, want %q: $(VAR) from the container's environment, $$ escaped", s.Process.Args, want)
	}
	if want := []string{"PATH=/bin", "GREETING=hello"}; !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %q, want %q: the image's first, the container's winning", s.Process.Env, want)
	}
	if s.Process.Cwd != "/srv" {
		t.Errorf("cwd %q, want the image's /srv", s.Process.Cwd)
	}
	if s.Linux.CgroupsPath != "/podsup/besteffort/podabc/c1" {
		t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
	}
	if s.Annotations[groupAnnotation] != "sb1" {
		t.Errorf("shim group annotation %q, want the sandbox's ID", s.Annotations[groupAnnotation])
	}
	if s.Process.Rlimits != nil {
		t.Errorf("rlimits %v, want none (containerd's own)", s.Process.Rlimits)
	}
	for dst, src := range map[string]string{
		"/etc/hosts": "/pods/p1/etc-hosts", "/etc/resolv.conf": "/pods/p1/resolv.conf", "/etc/hostname": "/pods/p1/hostname",
		"/dev/shm": "/pods/p1/shm", "/dev/termination-log": "/pods/p1/termination/c1", "/data": "/var/lib/podsup/pods/p1/volumes/data",
	} {
		m := mountAt(s, dst)
		if m == nil || m.Source != src || m.Type != "bind" {
			t.Errorf("mount at %s: %+v, want a bind of %s", dst, m, src)
		}
	}
	if n := len(slices.DeleteFunc(slices.Clone(s.Mounts), func(m specs.Mount) bool { return m.Destination != "/dev/shm" })); n != 1 {
		t.Errorf("%d mounts at /dev/shm, want the pod's replacing the default", n)
	}
	if s.Linux.RootfsPropagation != "" {
		t.Errorf("rootfs propagation %q without a propagating volume", s.Linux.RootfsPropagation)
	}
	if *s.Process.OOMScoreAdj != 1000 {
		t.Errorf("oom_score_adj %d, want 1000 for a best-effort container", *s.Process.OOMScoreAdj)
	}
	if *s.Linux.Resources.CPU.Shares != 2 {
		t.Errorf("cpu shares %d, want 2 without a request", *s.Linux.Resources.CPU.Shares)
	}
}

func TestContainerSpecRefused(t *testing.T) {
	cases := map[string]func(*Container){
		"no command at all": func(c *Container) {
			c.Container.Command, c.Container.Args, c.Image.Cmd, c.Image.Entrypoint = nil, nil, nil, nil
		},
		"runAsNonRoot with a root image": func(c *Container) {
			c.Container.SecurityContext = &v1.SecurityContext{RunAsNonRoot: ptr.To(true)}
		},
		"runAsNonRoot with a named user": func(c *Container) {
			c.Image.User = "app"
			c.Pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr.To(true)}
		},
		"Localhost seccomp without a profile": func(c *Container) {
			c.Container.SecurityContext = &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost}}
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			in := testContainer(testPod())
			edit(&in)
			if _, err := node.ContainerSpec(in); !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
		})
	}
}

func TestProcessArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"default"}}
	cases := []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image's entrypoint and cmd", nil, nil, []string{"/entry", "default"}},
		{"args replace cmd", nil, []string{"a"}, []string{"/entry", "a"}},
		{"command replaces both", []string{"/bin/x"}, nil, []string{"/bin/x"}},
		{"command and args", []string{"/bin/x"}, []string{"a", "b"}, []string{"/bin/x", "a", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := processArgs(img, &v1.Container{Command: tc.command, Args: tc.args})
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWorkingDirAndImageEnv(t *testing.T) {
	if got := workingDir(ocispec.ImageConfig{}, &v1.Container{}); got != "/" {
		t.Errorf("no working dir anywhere: %q, want /", got)
	}
	if got := workingDir(ocispec.ImageConfig{WorkingDir: "/img"}, &v1.Container{WorkingDir: "/mine"}); got != "/mine" {
		t.Errorf("container's working dir: %q, want /mine", got)
	}
	s := apply(t, withImageEnv(nil))
	if !slices.Equal(s.Process.Env, []string{defaultPath}) {
		t.Errorf("image without env: %q, want the default PATH", s.Process.Env)
	}
}

func TestUser(t *testing.T) {
	cases := []struct {
		name       string
		image      string
		pod, ctr   *int64
		group      *int64
		want       string
		uid, gid   uint32
		additional []uint32
	}{
		{name: "image without user", want: "", uid: 0, gid: 0, additional: []uint32{0, 10}},
		{name: "image's named user", image: "app", want: "app", uid: 1000, gid: 1000, additional: []uint32{1000, 29}},
		{name: "pod's runAsUser", image: "app", pod: ptr.To[int64](2000), want: "2000", uid: 2000, gid: 0, additional: []uint32{0}},
		{name: "container's runAsUser wins", pod: ptr.To[int64](2000), ctr: ptr.To[int64](3000), want: "3000", uid: 3000, gid: 0, additional: []uint32{0}},
		{name: "runAsGroup", ctr: ptr.To[int64](3000), group: ptr.To[int64](30), want: "3000:30", uid: 3000, gid: 30, additional: []uint32{30}},
		{name: "runAsGroup alone keeps root's groups", group: ptr.To[int64](30), want: "0:30", uid: 0, gid: 30, additional: []uint32{30, 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{RunAsUser: tc.pod, RunAsGroup: tc.group}}}
			c := &v1.Container{SecurityContext: &v1.SecurityContext{RunAsUser: tc.ctr}}
			user := effectiveSecurity(pod, c).user(tc.image)
			if user != tc.want {
				t.Fatalf("user %q, want %q", user, tc.want)
			}
			s := apply(t, withUser(user, false)...)
			if s.Process.User.UID != tc.uid || s.Process.User.GID != tc.gid {
				t.Errorf("uid:gid %d:%d, want %d:%d", s.Process.User.UID, s.Process.User.GID, tc.uid, tc.gid)
			}
			if !slices.Equal(s.Process.User.AdditionalGids, tc.additional) {
				t.Errorf("additional gids %v, want %v: the primary group, then the image's /etc/group", s.Process.User.AdditionalGids, tc.additional)
			}
		})
	}
}

func TestGroups(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{FSGroup: ptr.To[int64](500), SupplementalGroups: []int64{29, 600}}}}
	s := apply(t, append(withUser("app", false), withGroups(pod))...)
	if want := []uint32{1000, 29, 500, 600}; !slices.Equal(s.Process.User.AdditionalGids, want) {
		t.Errorf("additional gids %v, want %v: the image's, fsGroup, supplementalGroups, each once", s.Process.User.AdditionalGids, want)
	}
}

// TestStrictGroups: with supplementalGroupsPolicy Strict the image's
// /etc/group memberships (app is in audio, 29; root in wheel, 10) are not
// added; the primary group (which oci.WithUser lists too), fsGroup and
// supplementalGroups are.
func TestStrictGroups(t *testing.T) {
	for _, tc := range []struct {
		user       string
		uid, gid   uint32
		additional []uint32
	}{
		{user: "app", uid: 1000, gid: 1000, additional: []uint32{1000, 500, 600}},
		{user: "", uid: 0, gid: 0, additional: []uint32{500, 600}},
		{user: "0:30", uid: 0, gid: 30, additional: []uint32{30, 500, 600}},
	} {
		pod := &v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{FSGroup: ptr.To[int64](500), SupplementalGroups: []int64{600},
			SupplementalGroupsPolicy: ptr.To(v1.SupplementalGroupsPolicyStrict)}}}
		s := apply(t, append(withUser(tc.user, strictGroups(pod)), withGroups(pod))...)
		if u := s.Process.User; u.UID != tc.uid || u.GID != tc.gid || !slices.Equal(u.AdditionalGids, tc.additional) {
			t.Errorf("user %q: %d:%d groups %v, want %d:%d groups %v", tc.user, u.UID, u.GID, u.AdditionalGids, tc.uid, tc.gid, tc.additional)
		}
	}
}

func TestNonRoot(t *testing.T) {
	cases := []struct {
		user string
		ok   bool
	}{{"1000", true}, {"1000:0", true}, {"0", false}, {"", false}, {":5", false}, {"app", false}}
	for _, tc := range cases {
		err := security{runAsNonRoot: ptr.To(true)}.verifyNonRoot(tc.user)
		if (err == nil) != tc.ok {
			t.Errorf("user %q: error %v, want ok=%v", tc.user, err, tc.ok)
		}
	}
	if err := (security{}).verifyNonRoot("0"); err != nil {
		t.Errorf("without runAsNonRoot: %v", err)
	}
}

func securitySpec(t *testing.T, pod *v1.Pod, sc *v1.SecurityContext) *oci.Spec {
	t.Helper()
	opts, err := node.securityOpts(effectiveSecurity(pod, &v1.Container{SecurityContext: sc}))
	if err != nil {
		t.Fatal(err)
	}
	return apply(t, opts...)
}

func TestCapabilities(t *testing.T) {
	pod := &v1.Pod{}
	s := securitySpec(t, pod, &v1.SecurityContext{Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}, Add: []v1.Capability{"net_bind_service"}}})
	if want := []string{"CAP_NET_BIND_SERVICE"}; !slices.Equal(s.Process.Capabilities.Bounding, want) {
		t.Errorf("drop ALL, add one: %v, want %v", s.Process.Capabilities.Bounding, want)
	}
	s = securitySpec(t, pod, &v1.SecurityContext{Capabilities: &v1.Capabilities{Drop: []v1.Capability{"CHOWN"}, Add: []v1.Capability{"NET_ADMIN"}}})
	if slices.Contains(s.Process.Capabilities.Bounding, "CAP_CHOWN") || !slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_ADMIN") ||
		!slices.Contains(s.Process.Capabilities.Bounding, "CAP_KILL") {
		t.Errorf("drop CHOWN, add NET_ADMIN: %v", s.Process.Capabilities.Bounding)
	}
	s = securitySpec(t, pod, &v1.SecurityContext{Privileged: ptr.To(true), SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}})
	if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 {
		t.Errorf("privileged: capabilities %v, seccomp %v, masked %v; want all, none, none", s.Process.Capabilities.Bounding, s.Linux.Seccomp, s.Linux.MaskedPaths)
	}
}

func TestSecurityFlags(t *testing.T) {
	s := securitySpec(t, &v1.Pod{}, &v1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true)})
	if !s.Process.NoNewPrivileges || !s.Root.Readonly {
		t.Errorf("noNewPrivileges %v, readonly root %v; want both", s.Process.NoNewPrivileges, s.Root.Readonly)
	}
	s = securitySpec(t, &v1.Pod{}, nil)
	if s.Process.NoNewPrivileges || s.Root.Readonly {
		t.Errorf("defaults: noNewPrivileges %v, readonly root %v; want neither", s.Process.NoNewPrivileges, s.Root.Readonly)
	}
}

func TestSeccomp(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}}}}
	if s := securitySpec(t, pod, nil); s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("pod's RuntimeDefault: %+v, want containerd's default profile", s.Linux.Seccomp)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "audit.json"), []byte(`{"defaultAction":"SCMP_ACT_LOG"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	n := Node{SeccompDir: dir}
	opts, err := n.securityOpts(effectiveSecurity(&v1.Pod{}, &v1.Container{SecurityContext: &v1.SecurityContext{
		SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("audit.json")}}}))
	if err != nil {
		t.Fatal(err)
	}
	if s := apply(t, opts...); s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActLog {
		t.Errorf("Localhost profile: %+v, want the one in the seccomp directory", s.Linux.Seccomp)
	}
	if s := securitySpec(t, &v1.Pod{}, &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined}}); s.Linux.Seccomp != nil {
		t.Errorf("Unconfined: %+v, want none", s.Linux.Seccomp)
	}
}

func TestResources(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("128Mi")},
	}}}}}
	s := apply(t, node.resourceOpts(pod, &pod.Spec.Containers[0])...)
	cpu, mem := s.Linux.Resources.CPU, s.Linux.Resources.Memory
	if *cpu.Shares != 256 || *cpu.Quota != 50000 || *cpu.Period != 100000 || *mem.Limit != 128<<20 {
		t.Errorf("shares %d quota %d period %d memory %d; want 256, 50000, 100000, %d", *cpu.Shares, *cpu.Quota, *cpu.Period, *mem.Limit, 128<<20)
	}
	if adj := *s.Process.OOMScoreAdj; adj <= 2 || adj >= 1000 {
		t.Errorf("burstable oom_score_adj %d, want between 2 and 999", adj)
	}
	guaranteed := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("64Mi")},
	}}}}}
	if adj := *apply(t, node.resourceOpts(guaranteed, &guaranteed.Spec.Containers[0])...).Process.OOMScoreAdj; adj != 0 {
		t.Errorf("guaranteed oom_score_adj %d, want -997 raised to the host's floor 0", adj)
	}
	low := Node{OOMFloor: -1000}
	if adj := *apply(t, low.resourceOpts(guaranteed, &guaranteed.Spec.Containers[0])...).Process.OOMScoreAdj; adj != -997 {
		t.Errorf("guaranteed oom_score_adj %d on a host that allows it, want -997", adj)
	}
}

func TestContainerNamespaces(t *testing.T) {
	sb := Sandbox{ID: "sb", Pid: 77, NetNS: "/run/netns/x"}
	cases := []struct {
		name string
		spec v1.PodSpec
		sb   Sandbox
		want map[specs.LinuxNamespaceType]string // "host": not in the spec
	}{
		{"CNI network", v1.PodSpec{}, sb, map[specs.LinuxNamespaceType]string{
			specs.NetworkNamespace: "/run/netns/x", specs.UTSNamespace: "/proc/77/ns/uts", specs.IPCNamespace: "/proc/77/ns/ipc", specs.PIDNamespace: ""}},
		{"the sandbox's own network", v1.PodSpec{}, Sandbox{Pid: 77}, map[specs.LinuxNamespaceType]string{
			specs.NetworkNamespace: "/proc/77/ns/net"}},
		{"host network, IPC and PID", v1.PodSpec{HostNetwork: true, HostIPC: true, HostPID: true}, sb, map[specs.LinuxNamespaceType]string{
			specs.NetworkNamespace: "host", specs.UTSNamespace: "host", specs.IPCNamespace: "host", specs.PIDNamespace: "host"}},
		{"shared process namespace", v1.PodSpec{ShareProcessNamespace: ptr.To(true)}, sb, map[specs.LinuxNamespaceType]string{
			specs.PIDNamespace: "/proc/77/ns/pid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := apply(t, containerNamespaces(&v1.Pod{Spec: tc.spec}, tc.sb)...)
			for typ, want := range tc.want {
				path, ok := namespace(s, typ)
				switch {
				case want == "host" && ok:
					t.Errorf("%s namespace %q, want the host's", typ, path)
				case want != "host" && (!ok || path != want):
					t.Errorf("%s namespace %q (present %v), want %q", typ, path, ok, want)
				}
			}
		})
	}
}

func TestPropagation(t *testing.T) {
	in := testContainer(testPod())
	in.Mounts = []specs.Mount{
		{Source: "/a", Destination: "/a", Type: "bind", Options: []string{"rbind", "rslave"}},
		{Source: "/b", Destination: "/b", Type: "bind", Options: []string{"rbind", "rshared"}},
	}
	if s := containerSpec(t, in); s.Linux.RootfsPropagation != "rshared" {
		t.Errorf("rootfs propagation %q, want rshared for a Bidirectional volume", s.Linux.RootfsPropagation)
	}
	in.Mounts = in.Mounts[:1]
	if s := containerSpec(t, in); s.Linux.RootfsPropagation != "rslave" {
		t.Errorf("rootfs propagation %q, want rslave for a HostToContainer volume", s.Linux.RootfsPropagation)
	}
}

func TestReadOnlyRootKeepsWritableShm(t *testing.T) {
	in := testContainer(testPod())
	in.Container.SecurityContext = &v1.SecurityContext{ReadOnlyRootFilesystem: ptr.To(true)}
	in.Pod.Spec.HostIPC = true
	s := containerSpec(t, in)
	ro := func(dst string) bool { m := mountAt(s, dst); return m != nil && slices.Contains(m.Options, "ro") }
	if !ro("/etc/resolv.conf") || !ro("/etc/hostname") || ro("/etc/hosts") {
		t.Errorf("read-only root: resolv.conf and hostname read-only, hosts writable, as the CRI plugin binds them")
	}
	if m := mountAt(s, "/dev/shm"); m != nil && m.Source == in.Files.Shm {
		t.Errorf("hostIPC: the pod's /dev/shm is bound, want the host's IPC")
	}
}

func TestSandboxSpec(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{Sysctls: []v1.Sysctl{{Name: "net.ipv4.ip_local_port_range", Value: "1024 65000"}}}}}
	s := apply(t, node.SandboxSpec(PauseContainer{Pod: pod, ID: "sb1", NetNS: "/run/netns/p", CgroupsPath: "/podsup/besteffort/podx/sb1", Hostname: "web"})...)
	if !s.Root.Readonly || !s.Process.NoNewPrivileges || len(s.Process.Capabilities.Bounding) != 0 {
		t.Errorf("pause: readonly %v, noNewPrivileges %v, capabilities %v; want read-only, no new privileges, none",
			s.Root.Readonly, s.Process.NoNewPrivileges, s.Process.Capabilities.Bounding)
	}
	if s.Hostname != "web" || s.Linux.Sysctl["net.ipv4.ip_local_port_range"] != "1024 65000" || s.Annotations[groupAnnotation] != "sb1" {
		t.Errorf("hostname %q, sysctls %v, group %q", s.Hostname, s.Linux.Sysctl, s.Annotations[groupAnnotation])
	}
	if path, _ := namespace(s, specs.NetworkNamespace); path != "/run/netns/p" {
		t.Errorf("network namespace %q, want the CNI layer's", path)
	}
	if *s.Process.OOMScoreAdj != 0 {
		t.Errorf("pause oom_score_adj %d, want -998 raised to the floor 0", *s.Process.OOMScoreAdj)
	}
	host := &v1.Pod{Spec: v1.PodSpec{HostNetwork: true}}
	s = apply(t, node.SandboxSpec(PauseContainer{Pod: host, ID: "sb2", CgroupsPath: "/x", Hostname: "ignored"})...)
	if _, ok := namespace(s, specs.NetworkNamespace); ok || s.Hostname == "ignored" {
		t.Errorf("host network: namespaces %v, hostname %q; want the host's", s.Linux.Namespaces, s.Hostname)
	}
}

func TestCgroupAndAnnotationOptions(t *testing.T) {
	s := apply(t, withAnnotation("a", "1"), withAnnotation("b", "2"), withOOMScoreAdj(5), withoutRlimits, withSysctls(nil))
	if s.Annotations["a"] != "1" || s.Annotations["b"] != "2" || *s.Process.OOMScoreAdj != 5 || s.Process.Rlimits != nil {
		t.Errorf("annotations %v, oom %d, rlimits %v", s.Annotations, *s.Process.OOMScoreAdj, s.Process.Rlimits)
	}
	if strings.Contains(strings.Join(s.Process.Env, " "), "GREETING") {
		t.Errorf("env leaked between specs: %v", s.Process.Env)
	}
}

func TestUserNamespace(t *testing.T) {
	m := specs.LinuxIDMapping{ContainerID: 0, HostID: 131072, Size: 65536}
	s := apply(t, node.SandboxSpec(PauseContainer{Pod: testPod(), ID: "sb1", NetNS: "/run/netns/p", CgroupsPath: "/x", Hostname: "web", UserNS: &m})...)
	if path, ok := namespace(s, specs.UserNamespace); !ok || path != "" {
		t.Errorf("pause: user namespace %q (present %v), want a new one", path, ok)
	}
	s2 := apply(t, node.SandboxSpec(PauseContainer{Pod: testPod(), ID: "sb1", NetNS: "/run/netns/p", CgroupsPath: "/x", Hostname: "web", UserNS: &m, UserNSPath: "/pins/sb1"})...)
	if path, _ := namespace(s2, specs.UserNamespace); path != "/pins/sb1" || !slices.Equal(s2.Linux.UIDMappings, []specs.LinuxIDMapping{m}) {
		t.Errorf("pause: user namespace %q with mappings %v, want the one that owns the network namespace, /pins/sb1, with %v", path, s2.Linux.UIDMappings, m)
	}
	if !slices.Equal(s.Linux.UIDMappings, []specs.LinuxIDMapping{m}) || !slices.Equal(s.Linux.GIDMappings, []specs.LinuxIDMapping{m}) {
		t.Errorf("pause: mappings %v %v, want %v for both", s.Linux.UIDMappings, s.Linux.GIDMappings, m)
	}

	in := testContainer(testPod())
	in.Sandbox.UserNS = &m
	s = containerSpec(t, in)
	if path, _ := namespace(s, specs.UserNamespace); path != "/proc/4242/ns/user" {
		t.Errorf("container: user namespace %q, want the sandbox's", path)
	}
	if !slices.Equal(s.Linux.UIDMappings, []specs.LinuxIDMapping{m}) || !slices.Equal(s.Linux.GIDMappings, []specs.LinuxIDMapping{m}) {
		t.Errorf("container: mappings %v %v beside the namespace it joins, want %v: containerd gives the bundle to its root by them", s.Linux.UIDMappings, s.Linux.GIDMappings, m)
	}
	binds := 0
	for _, mnt := range s.Mounts {
		if mnt.Type != "bind" {
			continue
		}
		binds++
		if !slices.Equal(mnt.UIDMappings, []specs.LinuxIDMapping{m}) || !slices.Equal(mnt.GIDMappings, []specs.LinuxIDMapping{m}) {
			t.Errorf("bind mount at %s not ID-mapped: %v %v", mnt.Destination, mnt.UIDMappings, mnt.GIDMappings)
		}
	}
	if binds != 6 {
		t.Errorf("%d bind mounts, want /etc/hosts, resolv.conf, hostname, /dev/shm, the termination file and the volume: 6", binds)
	}
	if s := containerSpec(t, testContainer(testPod())); s.Mounts[len(s.Mounts)-1].UIDMappings != nil {
		t.Error("a pod in the host's user namespace got ID-mapped mounts")
	}
}

func TestContainerNamed(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}, InitContainers: []v1.Container{{Name: "init"}}}}
	for name, want := range map[string]bool{"app": true, "init": true, "nope": false} {
		c := ContainerNamed(pod, name)
		if (c != nil) != want || (c != nil && c.Name != name) {
			t.Errorf("ContainerNamed(%q) = %v", name, c)
		}
	}
}
