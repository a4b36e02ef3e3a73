package manifest

import (
	"testing"
)

// TestHugePages: hugepages limits and HugePages emptyDirs are accepted as
// the apiserver accepts them, and refused, naming the field, where it
// refuses them.
func TestHugePages(t *testing.T) {
	for _, tc := range []struct {
		name, resources, medium string
		want                    string // "": accepted
	}{
		{name: "limit and medium", resources: "{limits: {hugepages-2Mi: 4Mi, memory: 64Mi}}", medium: "HugePages"},
		{name: "sized medium", resources: "{limits: {hugepages-2Mi: 4Mi, memory: 64Mi}, requests: {hugepages-2Mi: 4Mi}}", medium: "HugePages-2Mi"},
		{name: "request below limit", resources: "{limits: {hugepages-2Mi: 4Mi, memory: 64Mi}, requests: {hugepages-2Mi: 2Mi}}",
			want: "spec.containers[0].resources.requests[hugepages-2Mi]: must equal the limit"},
		{name: "part of a page", resources: "{limits: {hugepages-2Mi: 3Mi, memory: 64Mi}}", want: "spec.containers[0].resources.limits[hugepages-2Mi]: 3Mi is not a whole number of 2Mi pages"},
		{name: "no cpu or memory", resources: "{limits: {hugepages-2Mi: 2Mi}}", want: "spec.containers[0].resources: hugepages need a cpu or memory request or limit"},
		{name: "bad size", resources: "{limits: {hugepages-big: 2Mi, memory: 64Mi}}", want: `"hugepages-big" is not hugepages-<size>`},
		{name: "medium without hugepages", resources: "{limits: {memory: 64Mi}}", medium: "HugePages",
			want: "spec.volumes[0].emptyDir.medium: medium HugePages needs the pod's containers to ask for exactly one hugepage size"},
		{name: "medium of a size not asked for", resources: "{limits: {hugepages-2Mi: 2Mi, memory: 64Mi}}", medium: "HugePages-1Gi",
			want: "spec.volumes[0].emptyDir.medium: medium HugePages-1Gi: no container of the pod asks for hugepages of that size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: a\n    image: busybox:1\n    resources: " + tc.resources + "\n"
			if tc.medium != "" {
				doc += "    volumeMounts: [{name: hp, mountPath: /hp}]\n  volumes: [{name: hp, emptyDir: {medium: " + tc.medium + "}}]\n"
			}
			checkParse(t, "hp.yaml", doc, tc.want)
		})
	}
}
