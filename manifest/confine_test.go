package manifest

import (
	"strings"
	"testing"
)

// TestAppArmorFields: the AppArmor fields and annotations are checked as
// the apiserver checks them; what is accepted runs with no warning, since
// podsup now honours it.
func TestAppArmorFields(t *testing.T) {
	for _, tc := range []struct {
		name, annotations, podSC, ctrSC string
		want                            string // "": accepted
	}{
		{name: "pod RuntimeDefault", podSC: "appArmorProfile: {type: RuntimeDefault}"},
		{name: "container Localhost", ctrSC: "appArmorProfile: {type: Localhost, localhostProfile: k8s-deny-write}"},
		{name: "container Unconfined", ctrSC: "appArmorProfile: {type: Unconfined}"},
		{name: "annotation", annotations: "{container.apparmor.security.beta.kubernetes.io/a: localhost/k8s-deny-write}"},
		{name: "annotation matching the field", annotations: "{container.apparmor.security.beta.kubernetes.io/a: runtime/default}", podSC: "appArmorProfile: {type: RuntimeDefault}"},
		{
			name: "profile name without Localhost", ctrSC: "appArmorProfile: {type: RuntimeDefault, localhostProfile: x}",
			want: "spec.containers[0].securityContext.appArmorProfile.localhostProfile: only allowed with type Localhost",
		},
		{
			name: "blank Localhost name", podSC: `appArmorProfile: {type: Localhost, localhostProfile: " "}`,
			want: "spec.securityContext.appArmorProfile.localhostProfile: required with type Localhost",
		},
		{
			name: "annotation for no container", annotations: "{container.apparmor.security.beta.kubernetes.io/b: runtime/default}",
			want: `metadata.annotations[container.apparmor.security.beta.kubernetes.io/b]: the pod has no container "b"`,
		},
		{
			name: "annotation without a name", annotations: "{container.apparmor.security.beta.kubernetes.io/a: localhost/}",
			want: `"localhost/" is not one of runtime/default, unconfined, localhost/<profile>`,
		},
		{
			name: "annotation against the field", annotations: "{container.apparmor.security.beta.kubernetes.io/a: unconfined}", ctrSC: "appArmorProfile: {type: RuntimeDefault}",
			want: `"unconfined" does not match the container's appArmorProfile (type RuntimeDefault)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n"
			if tc.annotations != "" {
				doc += "  annotations: " + tc.annotations + "\n"
			}
			doc += "spec:\n"
			if tc.podSC != "" {
				doc += "  securityContext: {" + tc.podSC + "}\n"
			}
			doc += "  containers:\n  - name: a\n    image: busybox:1\n"
			if tc.ctrSC != "" {
				doc += "    securityContext: {" + tc.ctrSC + "}\n"
			}
			checkParse(t, "aa.yaml", doc, tc.want)
		})
	}
}

// TestSELinuxOptionsAccepted: seLinuxOptions of the pod and the container
// are accepted without a warning: the runtime applies them where the host
// enforces SELinux and logs that it ignores them where it does not.
func TestSELinuxOptionsAccepted(t *testing.T) {
	doc := `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  securityContext: {seLinuxOptions: {level: "s0:c1,c2"}}
  containers:
  - {name: a, image: busybox:1, securityContext: {seLinuxOptions: {type: spc_t}}}
`
	objs, err := Parse("selinux.yaml", []byte(doc), testStatic)
	if err != nil || len(objs.Warnings) > 0 {
		t.Errorf("error %v, warnings %v; want neither", err, objs.Warnings)
	}
}

// checkParse parses doc as the file name: with want empty it must be
// accepted without a warning (the fields are honoured), else refused with
// an error that names the file and contains want.
func checkParse(t *testing.T, name, doc, want string) {
	t.Helper()
	objs, err := Parse(name, []byte(doc), testStatic)
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		if len(objs.Warnings) > 0 {
			t.Errorf("warnings for fields podsup honours: %v", objs.Warnings)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), name+": ") {
		t.Errorf("error %v; want it to name the file and contain %q", err, want)
	}
}
