package volume

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podsup/podsup/podspec"
)

var now = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// visible lists what a container sees in a volume: each user-visible path
// (through the symlinks) with its content.
func visible(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		base, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				data, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(base, p)
				out[filepath.Join(e.Name(), rel)] = string(data)
			}
			return nil
		})
	}
	return out
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	first := map[string]File{"a": {Data: []byte("1"), Mode: 0o644}, "sub/b": {Data: []byte("2"), Mode: 0o600}}
	changed, err := writeAtomic(dir, first, -1, now)
	if err != nil || !changed {
		t.Fatalf("first write: %v %v", changed, err)
	}
	if got := visible(t, dir); got["a"] != "1" || got["sub/b"] != "2" || len(got) != 2 {
		t.Fatalf("after the first write: %v", got)
	}
	if info, _ := os.Stat(filepath.Join(dir, "sub/b")); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", info.Mode().Perm())
	}
	oldData, _ := os.Readlink(filepath.Join(dir, dataDirName))

	// The same payload again writes nothing.
	if changed, err := writeAtomic(dir, first, -1, now.Add(time.Second)); err != nil || changed {
		t.Fatalf("unchanged payload: changed=%v err=%v", changed, err)
	}
	// A new payload swaps ..data and drops what is gone.
	second := map[string]File{"a": {Data: []byte("3"), Mode: 0o644}, "c": {Data: []byte("4"), Mode: 0o644}}
	if changed, err := writeAtomic(dir, second, -1, now.Add(2*time.Second)); err != nil || !changed {
		t.Fatalf("second write: %v %v", changed, err)
	}
	if got := visible(t, dir); got["a"] != "3" || got["c"] != "4" || len(got) != 2 {
		t.Errorf("after the second write: %v", got)
	}
	newData, _ := os.Readlink(filepath.Join(dir, dataDirName))
	if newData == oldData {
		t.Error("..data still points at the old directory")
	}
	if _, err := os.Stat(filepath.Join(dir, oldData)); !os.IsNotExist(err) {
		t.Error("the old data directory was not removed")
	}
	if link, _ := os.Readlink(filepath.Join(dir, "a")); link != filepath.Join(dataDirName, "a") {
		t.Errorf("a links to %q, want through ..data", link)
	}
	for _, bad := range []string{"../x", "/etc/passwd", "..data", "a/../../b"} {
		if _, err := writeAtomic(dir, map[string]File{bad: {Data: []byte("x")}}, -1, now); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
}

func TestWriteAtomicFSGroup(t *testing.T) {
	dir := t.TempDir()
	if _, err := writeAtomic(dir, map[string]File{"k": {Data: []byte("v"), Mode: 0o400}}, 4242, now); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(filepath.Join(dir, "k"))
	if info.Mode().Perm() != 0o440 {
		t.Errorf("mode %v, want 0440 (the fsGroup can read)", info.Mode().Perm())
	}
}

func pod(vols ...v1.Volume) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "apps", UID: "uid-1",
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "a \"quoted\" value"}}}
	p.Spec.Volumes = vols
	p.Spec.NodeName = "node1"
	p.Spec.Containers = []v1.Container{{Name: "app", Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}}}}
	return p
}

func TestPayloads(t *testing.T) {
	cfg := podspec.Objects{
		ConfigMaps: map[string]*v1.ConfigMap{"apps/settings": {Data: map[string]string{"mode": "fast", "level": "3"}, BinaryData: map[string][]byte{"blob": {0, 1}}}},
		Secrets:    map[string]*v1.Secret{"apps/token": {Data: map[string][]byte{"token": []byte("s3cr3t"), "user": []byte("bob")}}},
	}
	yes := true
	mode := int32(0o400)
	info := podspec.PodInfo{IPs: []string{"10.86.0.7"}, HostIP: "192.0.2.2"}
	cases := []struct {
		name string
		vs   v1.VolumeSource
		want []string // path=content
		err  error
	}{
		{"configMap, all keys", v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}}},
			[]string{"blob=\x00\x01", "level=3", "mode=fast"}, nil},
		{"configMap, items", v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"},
			Items: []v1.KeyToPath{{Key: "mode", Path: "conf/mode.txt"}}}}, []string{"conf/mode.txt=fast"}, nil},
		{"configMap, missing key", v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "settings"},
			Items: []v1.KeyToPath{{Key: "nope", Path: "x"}}}}, nil, podspec.ErrMissingConfig},
		{"configMap missing", v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "other"}}}, nil, podspec.ErrMissingConfig},
		{"configMap missing but optional", v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "other"}, Optional: &yes}}, nil, nil},
		{"secret", v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "token", Items: []v1.KeyToPath{{Key: "token", Path: "t", Mode: &mode}}}},
			[]string{"t=s3cr3t"}, nil},
		{"downwardAPI", v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
			{Path: "ip", FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}},
			{Path: "mem", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		}}}, []string{"annotations=note=\"a \\\"quoted\\\" value\"\n", "ip=10.86.0.7", "labels=app=\"web\"\n", "mem=64", "name=web-node1"}, nil},
		{"projected", v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "settings"}, Items: []v1.KeyToPath{{Key: "mode", Path: "mode"}}}},
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "token"}, Items: []v1.KeyToPath{{Key: "user", Path: "user"}}}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}, []string{"mode=fast", "ns=apps", "user=bob"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files, _, err := payload(pod(), &tc.vs, cfg, info)
			if !errors.Is(err, tc.err) || (err != nil) != (tc.err != nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			var got []string
			for p, f := range files {
				got = append(got, p+"="+string(f.Data))
			}
			sort.Strings(got)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	typ := func(s v1.HostPathType) *v1.HostPathType { return &s }
	cases := []struct {
		path string
		typ  v1.HostPathType
		ok   bool
	}{
		{dir, v1.HostPathDirectory, true},
		{file, v1.HostPathDirectory, false},
		{file, v1.HostPathFile, true},
		{dir, v1.HostPathFile, false},
		{sock, v1.HostPathSocket, true},
		{file, v1.HostPathSocket, false},
		{"/dev/null", v1.HostPathCharDev, true},
		{"/dev/null", v1.HostPathBlockDev, false},
		{filepath.Join(dir, "new-dir/deeper"), v1.HostPathDirectoryOrCreate, true},
		{filepath.Join(dir, "new-file"), v1.HostPathFileOrCreate, true},
		{file, v1.HostPathDirectoryOrCreate, false},
		{filepath.Join(dir, "missing"), v1.HostPathDirectory, false},
		{filepath.Join(dir, "anything"), v1.HostPathUnset, true},
	}
	for _, tc := range cases {
		err := checkHostPath(&v1.HostPathVolumeSource{Path: tc.path, Type: typ(tc.typ)})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrHostPathType)) {
			t.Errorf("%s as %q: %v", tc.path, tc.typ, err)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, "new-dir/deeper")); err != nil || !info.IsDir() {
		t.Error("DirectoryOrCreate did not create the directory")
	}
	if info, err := os.Stat(filepath.Join(dir, "new-file")); err != nil || !info.Mode().IsRegular() {
		t.Error("FileOrCreate did not create the file")
	}
}

func TestMounts(t *testing.T) {
	root := t.TempDir()
	m := New(func(string) string { return root })
	host := t.TempDir()
	os.Symlink("/etc", filepath.Join(host, "escape"))
	hostToContainer := v1.MountPropagationHostToContainer
	p := pod(
		v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		v1.Volume{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: host}}},
		v1.Volume{Name: "conf", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}},
	)
	c := &v1.Container{VolumeMounts: []v1.VolumeMount{
		{Name: "data", MountPath: "/data", SubPathExpr: "$(POD)/cache"},
		{Name: "host", MountPath: "/host", ReadOnly: true, MountPropagation: &hostToContainer},
		{Name: "conf", MountPath: "/etc/app"},
		{Name: "host", MountPath: "/sneaky", SubPath: "escape/passwd"},
	}}
	mounts, err := m.Mounts(p, c, []string{"POD=web"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ src, opts string }{
		{filepath.Join(root, "volumes/data/web/cache"), "rbind,rprivate,rw"},
		{host, "rbind,rslave,ro"},
		{filepath.Join(root, "volumes/conf"), "rbind,rprivate,ro"},
		{filepath.Join(host, "etc/passwd"), "rbind,rprivate,rw"},
	}
	for i, w := range want {
		if mounts[i].Source != w.src || strings.Join(mounts[i].Options, ",") != w.opts {
			t.Errorf("mount %d: %s %v, want %s %s", i, mounts[i].Source, mounts[i].Options, w.src, w.opts)
		}
	}
	if info, err := os.Stat(filepath.Join(root, "volumes/data/web/cache")); err != nil || !info.IsDir() {
		t.Error("the subPathExpr directory was not made")
	}
}

// fakeImages "mounts" an image by writing a file of it into the directory.
type fakeImages struct {
	calls []string
	err   error
}

func (f *fakeImages) MountImage(_ context.Context, podKey, volume string, src *v1.ImageVolumeSource, secrets []*v1.Secret, dir string) error {
	var names []string
	for _, s := range secrets {
		names = append(names, s.Name)
	}
	f.calls = append(f.calls, strings.Join([]string{podKey, volume, src.Reference, string(src.PullPolicy), strings.Join(names, "+")}, " "))
	if f.err != nil {
		return f.err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "bin", "tool"), []byte("from the image"), 0o755)
}

// TestImageVolume: an image volume is mounted by the runtime with the pod's
// pull secrets that exist, and reaches containers read-only and noexec,
// whole or by subPath, which must exist in the image.
func TestImageVolume(t *testing.T) {
	root := t.TempDir()
	images := &fakeImages{}
	m := New(func(string) string { return root }, WithImages(images))
	p := pod(v1.Volume{Name: "tools", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "tools:1", PullPolicy: v1.PullIfNotPresent}}})
	p.Spec.ImagePullSecrets = []v1.LocalObjectReference{{Name: "creds"}, {Name: "missing"}}
	cfg := podspec.Objects{Secrets: map[string]*v1.Secret{p.Namespace + "/creds": {ObjectMeta: metav1.ObjectMeta{Name: "creds"}}}}
	if err := m.Prepare(context.Background(), p, cfg, podspec.PodInfo{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{p.Namespace + "/" + p.Name + " tools tools:1 IfNotPresent creds"}; !reflect.DeepEqual(images.calls, want) {
		t.Errorf("MountImage calls %q, want %q", images.calls, want)
	}
	c := &v1.Container{VolumeMounts: []v1.VolumeMount{
		{Name: "tools", MountPath: "/tools"},
		{Name: "tools", MountPath: "/bin/tool", SubPath: "bin/tool"},
	}}
	mounts, err := m.Mounts(p, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ src, opts string }{
		{filepath.Join(root, "volumes/tools"), "rbind,rprivate,ro,noexec"},
		{filepath.Join(root, "volumes/tools/bin/tool"), "rbind,rprivate,ro,noexec"},
	}
	for i, w := range want {
		if mounts[i].Source != w.src || strings.Join(mounts[i].Options, ",") != w.opts {
			t.Errorf("mount %d: %s %v, want %s %s", i, mounts[i].Source, mounts[i].Options, w.src, w.opts)
		}
	}
	c.VolumeMounts = []v1.VolumeMount{{Name: "tools", MountPath: "/x", SubPath: "not/there"}}
	if _, err := m.Mounts(p, c, nil); err == nil || !strings.Contains(err.Error(), "does not exist in the volume") {
		t.Errorf("a subPath the image lacks: %v", err)
	}

	images.err = errors.New("pull refused")
	other := pod(v1.Volume{Name: "broken", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "nope:1", PullPolicy: v1.PullNever}}})
	other.Name = "other"
	err = m.Prepare(context.Background(), other, podspec.Objects{}, podspec.PodInfo{})
	if !Failed(err)["broken"] || !strings.Contains(err.Error(), "image nope:1: pull refused") {
		t.Errorf("a failed mount: %v; want the volume named with the image and the cause", err)
	}
	if err := New(func(string) string { return t.TempDir() }).Prepare(context.Background(), other, podspec.Objects{}, podspec.PodInfo{}); err == nil {
		t.Error("an image volume without a runtime to mount it succeeded")
	}
}
