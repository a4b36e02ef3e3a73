package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

var testStatic = Static{NodeName: "node1", Source: SourceFile}

// TestBadCorpus parses every file in testdata/bad; each names on its first
// line ("# want: ...") the message it must produce. The message must also
// name the file, so a person knows where to look.
func TestBadCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*")
	if err != nil || len(files) < 40 {
		t.Fatalf("corpus: %d files, err %v", len(files), err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := bytes.Cut(data, []byte("\n"))
			want, ok := strings.CutPrefix(string(first), "# want: ")
			if !ok {
				t.Fatalf("first line must be '# want: <message>', is %q", first)
			}
			objs, err := Parse(file, data, testStatic)
			if err == nil {
				t.Fatalf("parsed without error into %d pods; want %q", len(objs.Pods), want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error is not ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, want)
			}
			if !strings.HasPrefix(err.Error(), file+": ") {
				t.Errorf("error does not start with the file name %s: %v", file, err)
			}
		})
	}
}

// TestKubeadmManifests parses the manifests kubeadm writes, unchanged: they
// must be accepted without a warning and get the kubelet's static identity.
func TestKubeadmManifests(t *testing.T) {
	files, _ := filepath.Glob("testdata/kubeadm/*.yaml")
	if len(files) != 4 {
		t.Fatalf("want the 4 kubeadm manifests, have %d", len(files))
	}
	hexUID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, _ := os.ReadFile(file)
			objs, err := Parse(file, data, testStatic)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs.Warnings) > 0 {
				t.Errorf("warnings: %v", objs.Warnings)
			}
			if len(objs.Pods) != 1 {
				t.Fatalf("%d pods", len(objs.Pods))
			}
			pod := objs.Pods[0]
			base := strings.TrimSuffix(filepath.Base(file), ".yaml")
			if pod.Name != base+"-node1" || pod.Namespace != "kube-system" {
				t.Errorf("name %s/%s, want kube-system/%s-node1", pod.Namespace, pod.Name, base)
			}
			if !hexUID.MatchString(string(pod.UID)) {
				t.Errorf("uid %q is not 32 hex digits", pod.UID)
			}
			if pod.Annotations[AnnotationHash] != string(pod.UID) || pod.Annotations[AnnotationSource] != "file" {
				t.Errorf("annotations %v", pod.Annotations)
			}
			if pod.Spec.NodeName != "node1" || !pod.Spec.HostNetwork {
				t.Errorf("nodeName %q hostNetwork %v", pod.Spec.NodeName, pod.Spec.HostNetwork)
			}
			if pod.Spec.Priority == nil || *pod.Spec.Priority != 2000001000 {
				t.Errorf("priority %v", pod.Spec.Priority)
			}
			if !toleratesNoExecute(pod) {
				t.Error("no NoExecute toleration")
			}
			if pod.Status.Phase != v1.PodPending {
				t.Errorf("phase %q", pod.Status.Phase)
			}
		})
	}
}

func TestHostileInputs(t *testing.T) {
	aliasBomb := "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	prev := "a"
	for i := 0; i < 9; i++ {
		n := fmt.Sprintf("b%d", i)
		aliasBomb += fmt.Sprintf("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	manyDocs := strings.Repeat("kind: ConfigMap\napiVersion: v1\nmetadata: {name: c}\n---\n", MaxDocuments+1)
	cases := []struct {
		name, data, want string
	}{
		{"invalid utf-8", "kind: Pod\nmetadata: {name: \xff\xfe}\n", "not valid UTF-8"},
		{"binary junk", "\x00\x01\x02\x03\x7fELF\x00\x00", "yaml"},
		{"too big", "# " + strings.Repeat("x", MaxManifestBytes), "more than the limit"},
		{"too many documents", manyDocs, "more than 1000"},
		{"alias bomb", aliasBomb, "excessive aliasing"},
		{"deep nesting", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "exceeded max depth"},
		{"deep mappings", strings.Repeat("{a: ", 20000) + "1" + strings.Repeat("}", 20000), "exceeded max depth"},
		{"scalar document", "just a string\n", "not a Kubernetes object"},
		{"list document", "- a\n- b\n", "not a Kubernetes object"},
		{"huge name", "apiVersion: v1\nkind: Pod\nmetadata: {name: " + strings.Repeat("a", 100000) + "}\nspec: {containers: [{name: a, image: b:1}]}\n", "must be no more than 253 characters"},
		{"negative port", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: b:1, ports: [{containerPort: -80}]}]}\n", "containerPort: must be between 1 and 65535"},
		{"int32 overflow", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: b:1, ports: [{containerPort: 4294967297}]}]}\n", "spec.containers[0].ports[0].containerPort: wrong type"},
		{"nested list", "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n", "a List inside a list is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("hostile.yaml", []byte(tc.data), testStatic)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %.300v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestUnknownFieldsWarn(t *testing.T) {
	data := `apiVersion: v1
kind: Pod
metadata: {name: web, labelz: {a: b}}
spec:
  containers:
  - name: web
    image: busybox:1
    imagePullPolcy: Always
`
	objs, err := Parse("web.yaml", []byte(data), testStatic)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range objs.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		"web.yaml: pod web: metadata.labelz: unknown field, ignored (a typo?)",
		"web.yaml: pod web: spec.containers[0].imagePullPolcy: unknown field, ignored (a typo?)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTypoReportedWithErrors: a refused pod's unknown fields are listed
// with its errors, since the typo is often the cause: here the misspelt
// imagePullPolcy is why there is no image.
func TestTypoReportedWithErrors(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: web\n    imagePullPolcy: Always\n"
	badType := "apiVersion: v1\nkind: Pod\nmetadata: {name: db}\nspec: {containers: [{name: db, image: db:1, ports: [{containerPort: x}]}]}\n"
	tests := []struct {
		name, manifest string
		want           []string
	}{
		{"invalid pod", pod, []string{
			"web.yaml: pod web: spec.containers[0].image: required",
			"web.yaml: pod web: spec.containers[0].imagePullPolcy: unknown field, ignored (a typo?)",
		}},
		{"undecodable document beside one with a typo", badType + "---\n" + strings.Replace(pod, "    imagePullPolcy", "    image: web:1\n    imagePullPolcy", 1), []string{
			"web.yaml: document 1 (line 1): pod db: spec.containers[0].ports[0].containerPort: wrong type: got string, want an integer in range",
			"web.yaml: document 2 (line 6): pod web: spec.containers[0].imagePullPolcy: unknown field, ignored (a typo?)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "web.yaml")
			if err := os.WriteFile(file, []byte(tc.manifest), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			n := Validate(&out, &errOut, testStatic, file)
			got := strings.ReplaceAll(strings.TrimSpace(errOut.String()), dir+"/", "")
			if got != strings.Join(tc.want, "\n") {
				t.Errorf("podsup validate printed:\n%s\nwant:\n%s", got, strings.Join(tc.want, "\n"))
			}
			if n != len(tc.want) {
				t.Errorf("%d problems, want %d", n, len(tc.want))
			}
		})
	}
}

func TestMixedManifest(t *testing.T) {
	data := `# a pod, its configuration and a list
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: apps}
stringData: {token: s3cr3t}
---
---
apiVersion: v1
kind: PodList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: one}
  spec: {containers: [{name: a, image: "busybox"}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: two, namespace: apps}
  spec: {containers: [{name: a, image: "busybox:1.36", resources: {limits: {memory: 64Mi}}}]}
`
	objs, err := Parse("mixed.yaml", []byte(data), testStatic)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.ConfigMaps) != 1 || len(objs.Secrets) != 1 || len(objs.Pods) != 2 {
		t.Fatalf("got %d configmaps, %d secrets, %d pods", len(objs.ConfigMaps), len(objs.Secrets), len(objs.Pods))
	}
	if s := objs.Secrets[0]; string(s.Data["token"]) != "s3cr3t" || s.StringData != nil || s.Type != v1.SecretTypeOpaque {
		t.Errorf("secret not folded: %+v", s)
	}
	one, two := objs.Pods[0], objs.Pods[1]
	if one.Namespace != "default" || one.Name != "one-node1" || two.Namespace != "apps" {
		t.Errorf("names %s/%s %s/%s", one.Namespace, one.Name, two.Namespace, two.Name)
	}
	if p := one.Spec.Containers[0].ImagePullPolicy; p != v1.PullAlways {
		t.Errorf("untagged image pull policy %q, want Always", p)
	}
	c := two.Spec.Containers[0]
	if c.ImagePullPolicy != v1.PullIfNotPresent {
		t.Errorf("tagged image pull policy %q, want IfNotPresent", c.ImagePullPolicy)
	}
	if req := c.Resources.Requests[v1.ResourceMemory]; req.String() != "64Mi" {
		t.Errorf("memory request %s, want the limit 64Mi", req.String())
	}
}

func TestJSONManifest(t *testing.T) {
	yml := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, image: 'busybox:1'}]}\n"
	js := `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web"},"spec":{"containers":[{"image":"busybox:1","name":"a"}]}}`
	a, err := Parse("/m/web.yaml", []byte(yml), testStatic)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("/m/web.yaml", []byte(js), testStatic)
	if err != nil {
		t.Fatal(err)
	}
	if a.Pods[0].UID != b.Pods[0].UID {
		t.Errorf("the same pod as YAML and JSON has two UIDs: %s %s", a.Pods[0].UID, b.Pods[0].UID)
	}
}

func TestUID(t *testing.T) {
	base := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, image: 'busybox:1'}]}\n"
	uid := func(origin, data string, st Static) string {
		t.Helper()
		objs, err := Parse(origin, []byte(data), st)
		if err != nil {
			t.Fatal(err)
		}
		return string(objs.Pods[0].UID)
	}
	first := uid("/m/web.yaml", base, testStatic)
	cases := []struct {
		name      string
		origin    string
		data      string
		st        Static
		sameAsOne bool
	}{
		{"same content again", "/m/web.yaml", base, testStatic, true},
		{"comments and layout", "/m/web.yaml", "# comment\n" + strings.ReplaceAll(base, "{name: web}", "\n  name: web\n"), testStatic, true},
		{"other file", "/m/web2.yaml", base, testStatic, false},
		{"other node", "/m/web.yaml", base, Static{NodeName: "node2", Source: SourceFile}, false},
		{"other content", "/m/web.yaml", strings.Replace(base, "busybox:1", "busybox:2", 1), testStatic, false},
		{"explicit default", "/m/web.yaml", strings.Replace(base, "image: 'busybox:1'", "image: 'busybox:1', imagePullPolicy: IfNotPresent", 1), testStatic, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := uid(tc.origin, tc.data, tc.st); (got == first) != tc.sameAsOne {
				t.Errorf("uid %s vs %s: same=%v, want same=%v", got, first, got == first, tc.sameAsOne)
			}
		})
	}
	kept := uid("/m/web.yaml", strings.Replace(base, "{name: web}", "{name: web, uid: my-uid}", 1), testStatic)
	if kept != "my-uid" {
		t.Errorf("a UID set in the manifest was replaced by %q", kept)
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	cases := map[string]v1.PullPolicy{
		"busybox":                                   v1.PullAlways,
		"busybox:latest":                            v1.PullAlways,
		"busybox:1.36":                              v1.PullIfNotPresent,
		"localhost:5000/busybox":                    v1.PullAlways,
		"localhost:5000/busybox:1":                  v1.PullIfNotPresent,
		"registry.k8s.io/etcd:3.5.15-0":             v1.PullIfNotPresent,
		"busybox@sha256:" + strings.Repeat("a", 64): v1.PullIfNotPresent,
	}
	for image, want := range cases {
		if got := DefaultPullPolicy(image); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

// TestImageVolumeDefaults: an image volume's pull policy is defaulted as a
// container's is.
func TestImageVolumeDefaults(t *testing.T) {
	pod := &v1.Pod{Spec: v1.PodSpec{Volumes: []v1.Volume{
		{Name: "latest", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "busybox"}}},
		{Name: "tagged", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "busybox:1"}}},
		{Name: "set", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "busybox", PullPolicy: v1.PullNever}}},
	}}}
	SetDefaults(pod)
	for i, want := range []v1.PullPolicy{v1.PullAlways, v1.PullIfNotPresent, v1.PullNever} {
		if got := pod.Spec.Volumes[i].Image.PullPolicy; got != want {
			t.Errorf("%s: pullPolicy %q, want %q", pod.Spec.Volumes[i].Name, got, want)
		}
	}
}

func TestProbeDefaults(t *testing.T) {
	data := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, image: 'b:1', readinessProbe: {httpGet: {port: 80}}}]}\n"
	objs, err := Parse("web.yaml", []byte(data), testStatic)
	if err != nil {
		t.Fatal(err)
	}
	p := objs.Pods[0].Spec.Containers[0].ReadinessProbe
	if p.TimeoutSeconds != 1 || p.PeriodSeconds != 10 || p.SuccessThreshold != 1 || p.FailureThreshold != 3 ||
		p.HTTPGet.Path != "/" || p.HTTPGet.Scheme != v1.URISchemeHTTP {
		t.Errorf("probe defaults: %+v %+v", p, p.HTTPGet)
	}
	spec := objs.Pods[0].Spec
	if spec.RestartPolicy != v1.RestartPolicyAlways || spec.DNSPolicy != v1.DNSClusterFirst || *spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("pod defaults: %s %s %d", spec.RestartPolicy, spec.DNSPolicy, *spec.TerminationGracePeriodSeconds)
	}
}

// TestValidateNeverPrintsSecrets runs `podsup validate` on a Secret and checks
// that neither output stream carries its value.
func TestValidateNeverPrintsSecrets(t *testing.T) {
	dir := t.TempDir()
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2-very-secret}\ndata: {key: aHVudGVyMy1iYXNlNjQ=}\n"
	bad := secret + "type: kubernetes.io/dockerconfigjson\n"
	os.WriteFile(filepath.Join(dir, "good.yaml"), []byte(secret), 0o600)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(strings.Replace(bad, "{name: db}", "{name: db2}", 1)), 0o600)
	var out, errOut bytes.Buffer
	n := Validate(&out, &errOut, testStatic, dir)
	all := out.String() + errOut.String()
	if n != 1 {
		t.Errorf("%d problems, want 1:\n%s", n, all)
	}
	for _, leak := range []string{"hunter2", "aHVudGVy", "hunter3"} {
		if strings.Contains(all, leak) {
			t.Errorf("output leaks %q:\n%s", leak, all)
		}
	}
	if !strings.Contains(out.String(), "secret default/db: Opaque, 2 keys") {
		t.Errorf("summary missing:\n%s", out.String())
	}
}

func TestValidateSummary(t *testing.T) {
	var out, errOut bytes.Buffer
	n := Validate(&out, &errOut, testStatic, "testdata/kubeadm")
	if n != 0 {
		t.Fatalf("%d problems: %s", n, errOut.String())
	}
	if lines := strings.Count(out.String(), "\n"); lines != 4 {
		t.Errorf("%d summary lines, want one per pod:\n%s", lines, out.String())
	}
	if !strings.Contains(out.String(), "testdata/kubeadm/etcd.yaml: pod kube-system/etcd-node1: ok, 1 container(s), host network") {
		t.Errorf("summary:\n%s", out.String())
	}
}

// TestExamplesValidate keeps the bundled examples valid: the README's first
// command runs them.
func TestExamplesValidate(t *testing.T) {
	var out, errOut bytes.Buffer
	if n := Validate(&out, &errOut, testStatic, "../examples"); n != 0 {
		t.Fatalf("%d problems in examples/:\n%s", n, errOut.String())
	}
	if errOut.Len() > 0 {
		t.Errorf("warnings in examples/:\n%s", errOut.String())
	}
	if !strings.Contains(out.String(), "pod default/web-node1: ok") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestHostUsers(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {hostUsers: false, %s containers: [{name: a, image: b:1}]}\n"
	if _, err := Parse("userns.yaml", []byte(fmt.Sprintf(pod, "")), testStatic); err != nil {
		t.Fatalf("hostUsers: false refused: %v", err)
	}
	for _, shared := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		_, err := Parse("userns.yaml", []byte(fmt.Sprintf(pod, shared+": true,")), testStatic)
		if err == nil || !strings.Contains(err.Error(), "userns.yaml") || !strings.Contains(err.Error(), "spec.hostUsers: false cannot be combined with "+shared) {
			t.Errorf("hostUsers: false with %s: %v, want the file and the field named", shared, err)
		}
	}
}

// TestSidecarsAndRestartRules: sidecars may have probes and no rules;
// container restart policies and rules are checked as the apiserver does.
func TestSidecarsAndRestartRules(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  initContainers: [%s]\n  containers: [%s]\n"
	ok := []struct{ name, inits, apps string }{
		{"a sidecar with probes", "{name: proxy, image: b:1, restartPolicy: Always, startupProbe: {tcpSocket: {port: 80}}, readinessProbe: {tcpSocket: {port: 80}}, livenessProbe: {tcpSocket: {port: 80}}}", "{name: a, image: b:1}"},
		{"a container with its own policy", "", "{name: a, image: b:1, restartPolicy: Never}"},
		{"restart rules", "", "{name: a, image: b:1, restartPolicy: Never, restartPolicyRules: [{action: Restart, exitCodes: {operator: In, values: [42]}}]}"},
	}
	for _, tc := range ok {
		if _, err := Parse("p.yaml", []byte(fmt.Sprintf(pod, tc.inits, tc.apps)), testStatic); err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
		}
	}
	bad := []struct{ name, inits, apps, want string }{
		{"probes on a regular init container", "{name: setup, image: b:1, readinessProbe: {tcpSocket: {port: 80}}}", "{name: a, image: b:1}",
			"spec.initContainers[0].readinessProbe: init containers may not have probes unless they are sidecars"},
		{"rules on a sidecar", "{name: proxy, image: b:1, restartPolicy: Always, restartPolicyRules: [{action: Restart, exitCodes: {operator: In, values: [1]}}]}", "{name: a, image: b:1}",
			"spec.initContainers[0].restartPolicyRules: not allowed on a sidecar"},
		{"rules without a policy", "", "{name: a, image: b:1, restartPolicyRules: [{action: Restart, exitCodes: {operator: In, values: [1]}}]}",
			"spec.containers[0].restartPolicy: required when restartPolicyRules are set"},
		{"a bad operator", "", "{name: a, image: b:1, restartPolicy: Never, restartPolicyRules: [{action: Restart, exitCodes: {operator: Maybe, values: [1]}}]}",
			`spec.containers[0].restartPolicyRules[0].exitCodes.operator: "Maybe" is not one of In, NotIn`},
		{"a rule without exit codes", "", "{name: a, image: b:1, restartPolicy: Never, restartPolicyRules: [{action: Restart}]}",
			"spec.containers[0].restartPolicyRules[0].exitCodes: required"},
		{"RestartAllContainers", "", "{name: a, image: b:1, restartPolicy: Never, restartPolicyRules: [{action: RestartAllContainers, exitCodes: {operator: In, values: [1]}}]}",
			"spec.containers[0].restartPolicyRules[0].action: not supported by podsup"},
		{"a bad policy", "", "{name: a, image: b:1, restartPolicy: Sometimes}",
			`spec.containers[0].restartPolicy: "Sometimes" is not one of Always, OnFailure, Never`},
	}
	for _, tc := range bad {
		_, err := Parse("p.yaml", []byte(fmt.Sprintf(pod, tc.inits, tc.apps)), testStatic)
		if err == nil || !strings.Contains(err.Error(), "p.yaml") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestPodLevelResources: pod-level CPU and memory are accepted, a limit
// requests itself, and what the apiserver refuses is refused.
func TestPodLevelResources(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  resources: %s\n  containers: [%s]\n"
	objs, err := Parse("p.yaml", []byte(fmt.Sprintf(pod, "{limits: {cpu: 500m, memory: 64Mi}}", "{name: a, image: b:1}")), testStatic)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if got := objs.Pods[0].Spec.Resources.Requests.Memory().String(); got != "64Mi" {
		t.Errorf("memory request defaulted to %s, want the limit 64Mi", got)
	}
	bad := []struct{ name, resources, containers, want string }{
		{"hugepages", "{limits: {hugepages-2Mi: 2Mi, memory: 64Mi}}", "{name: a, image: b:1}", "spec.resources.limits[hugepages-2Mi]: not supported by podsup"},
		{"request above limit", "{requests: {cpu: '2'}, limits: {cpu: '1'}}", "{name: a, image: b:1}", "spec.resources.requests[cpu]: 2 is more than the limit 1"},
		{"a container's limit above the pod's", "{limits: {memory: 64Mi}}", "{name: a, image: b:1, resources: {limits: {memory: 128Mi}}}", "spec.containers[0].resources.limits[memory]: 128Mi is more than the pod's limit 64Mi"},
		{"containers request more than the pod", "{requests: {cpu: 100m}}", "{name: a, image: b:1, resources: {requests: {cpu: 60m}}}, {name: b, image: b:1, resources: {requests: {cpu: 60m}}}", "spec.resources.requests[cpu]: 100m is less than the containers request together, 120m"},
	}
	for _, tc := range bad {
		_, err := Parse("p.yaml", []byte(fmt.Sprintf(pod, tc.resources, tc.containers)), testStatic)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestStopSignal(t *testing.T) {
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: b:1, lifecycle: {stopSignal: %s}}]}\n"
	if _, err := Parse("p.yaml", []byte(fmt.Sprintf(pod, "SIGUSR1")), testStatic); err != nil {
		t.Errorf("SIGUSR1 refused: %v", err)
	}
	_, err := Parse("p.yaml", []byte(fmt.Sprintf(pod, "SIGNOPE")), testStatic)
	if err == nil || !strings.Contains(err.Error(), `spec.containers[0].lifecycle.stopSignal: "SIGNOPE" is not a signal name`) {
		t.Errorf("SIGNOPE: %v", err)
	}
}
