// Package hostile generates manifests no one should write: malformed,
// gigantic, deeply nested, self-expanding, binary, out of range. Tests feed
// them to every source (a file, the manifest URL, a push) and check each is
// refused with the message in Input.Want, without disturbing anything else.
// Everything is generated, deterministically, at test time.
package hostile

import (
	"fmt"
	"math/rand"
	"strings"
)

// Input is one hostile manifest.
type Input struct {
	// Name names the input: a DNS label, usable as a file name (with
	// Ext), a push name and a test name.
	Name string
	// Ext is the file extension it would have: ".yaml" or ".json".
	Ext string
	// Data is the manifest.
	Data []byte
	// Want is a piece of the message that refuses it, the same whichever
	// source it came from.
	Want string
}

// pod is a valid pod with extra lines appended under spec.
func pod(specExtra string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: hostile}\nspec:\n  containers:\n  - {name: c, image: busybox:1}\n" + specExtra
}

// container is a valid pod whose one container has the given extra fields,
// in flow style.
func container(extra string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: hostile}\nspec:\n  containers:\n  - {name: c, image: busybox:1, " + extra + "}\n"
}

// Inputs returns the corpus for a parser that refuses manifests of more
// than limit bytes: inputs of every kind, some just over the limit and some
// just under it. Small inputs come first.
func Inputs(limit int) []Input {
	under := limit - 4096
	in := []Input{
		{"malformed-yaml", ".yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a\nspec: [\n"), "yaml: line"},
		{"malformed-json", ".json", []byte(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "a", "image": "b`), "yaml: found unexpected end of stream"},
		{"tab-indent", ".yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata:\n\tname: a\n"), "found character that cannot start any token"},
		{"duplicate-key", ".yaml", []byte("apiVersion: v1\nkind: Pod\nkind: Secret\n"), `key "kind" already set in map`},
		{"scalar-document", ".yaml", []byte("just a string\n"), "not a Kubernetes object"},
		{"python-tag", ".yaml", []byte("!!python/object/apply:os.system [\"reboot\"]\n"), "not a Kubernetes object"},
		{"binary-junk", ".yaml", junk(64 << 10), "not valid UTF-8"},
		{"control-chars", ".yaml", []byte("apiVersion: v1\nkind: Pod\x01\x02\x1b[31m\n"), "control characters are not allowed"},
		{"nul-in-string", ".yaml", []byte("apiVersion: v1\nkind: \"Pod\x00\"\n"), "control characters are not allowed"},
		{"invalid-utf8", ".yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: caf\xe9}\n"), "not valid UTF-8"},
		{"utf16", ".yaml", utf16(pod("")), "not valid UTF-8"},
		{"billion-laughs", ".yaml", []byte(billionLaughs()), "excessive aliasing"},
		{"merge-key-bomb", ".yaml", []byte(mergeBomb()), "excessive aliasing"},
		{"deep-flow-nesting", ".yaml", []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), "exceeded max depth"},
		{"deep-json-nesting", ".json", []byte(strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)), "exceeded max depth"},
		{"deep-block-nesting", ".yaml", []byte(deepBlock(1000)), "kind: required"},
		{"no-kind", ".yaml", []byte("apiVersion: v1\nmetadata: {name: a}\n"), "kind: required"},
		{"kind-deployment", ".yaml", []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n"), `"Deployment" is not supported`},
		{"kind-number", ".yaml", []byte("apiVersion: v1\nkind: 42\n"), "wrong type: got number, want a string"},
		{"pod-apps-v1", ".yaml", []byte("apiVersion: apps/v1\nkind: Pod\nmetadata: {name: a}\n"), `apiVersion: must be v1, not "apps/v1"`},
		{"list-in-list", ".yaml", []byte("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n"), "inside a list is not supported"},
		{"grace-negative", ".yaml", []byte(pod("  terminationGracePeriodSeconds: -30\n")), "terminationGracePeriodSeconds: must not be negative"},
		{"grace-overflow", ".yaml", []byte(pod("  terminationGracePeriodSeconds: 9223372036854775808\n")), "terminationGracePeriodSeconds: wrong type"},
		{"grace-huge-float", ".yaml", []byte(pod("  terminationGracePeriodSeconds: 1e400\n")), "terminationGracePeriodSeconds: wrong type"},
		{"grace-nan", ".json", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"terminationGracePeriodSeconds":NaN,"containers":[{"name":"c","image":"b"}]}}`), "terminationGracePeriodSeconds: wrong type"},
		{"deadline-zero", ".yaml", []byte(pod("  activeDeadlineSeconds: 0\n")), "activeDeadlineSeconds: must be at least 1"},
		{"port-negative", ".yaml", []byte(container("ports: [{containerPort: -80}]")), "containerPort: must be between 1 and 65535"},
		{"port-too-big", ".yaml", []byte(container("ports: [{containerPort: 70000}]")), "containerPort: must be between 1 and 65535"},
		{"port-overflow", ".yaml", []byte(container("ports: [{containerPort: 4294967377}]")), "containerPort: wrong type"},
		{"cpu-negative", ".yaml", []byte(container("resources: {limits: {cpu: '-1'}}")), "limits[cpu]: must not be negative"},
		{"memory-overflow", ".yaml", []byte(container("resources: {limits: {memory: '9223372036854775808'}}")), "limits[memory]: 9223372036854775808 is more than the largest amount"},
		{"memory-exponent", ".yaml", []byte(container("resources: {limits: {memory: 1e100}}")), "limits[memory]: 10e99 is more than the largest amount"},
		{"quantity-junk", ".yaml", []byte(container("resources: {limits: {memory: lots}}")), "limits"},
		{"huge-name", ".yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: " + strings.Repeat("a", 1<<20) + "}\nspec: {containers: [{name: c, image: b}]}\n"), "must be no more than 253 characters"},
		{"huge-label", ".yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {a: " + strings.Repeat("b", 1<<20) + "}}\nspec: {containers: [{name: c, image: b}]}\n"), "must be no more than 63 bytes"},
		{"huge-image", ".yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: " + strings.Repeat("a", 1<<20) + "}]}\n"), "an image reference is at most"},
		{"too-many-documents", ".yaml", []byte(strings.Repeat("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n", 1001)), "more than 1000 documents"},
		{"over-limit", ".yaml", overLimit(limit), fmt.Sprintf("more than the limit of %d", limit)},
		{"under-limit-annotation", ".yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: a, annotations: {a: " + strings.Repeat("b", under) + "}}\nspec: {containers: [{name: c, image: b}]}\n"), "metadata.annotations: Too long"},
		{"under-limit-configmap", ".yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: " + strings.Repeat("b", under) + "}\n"), "more than the limit of 1048576"},
		{"under-limit-line", ".yaml", []byte(strings.Repeat("a", under)), "not a Kubernetes object"},
		{"under-limit-errors", ".yaml", []byte(manyContainers(under)), "more, not listed"},
	}
	return in
}

// LightSize bounds the inputs Light returns.
const LightSize = 128 << 10

// Light returns the inputs of Inputs of at most LightSize bytes, and the
// one just over the limit (which no parser reads): the corpus without the
// inputs that take seconds to parse, each of a different kind.
func Light(limit int) []Input {
	var light []Input
	for _, in := range Inputs(limit) {
		if len(in.Data) <= LightSize || len(in.Data) > limit {
			light = append(light, in)
		}
	}
	return light
}

// junk is n bytes of seeded random binary.
func junk(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(11)).Read(b)
	copy(b, "\x7fELF\x02\x01\x01\x00")
	return b
}

func utf16(s string) []byte {
	b := []byte{0xff, 0xfe}
	for _, r := range s {
		b = append(b, byte(r), byte(r>>8))
	}
	return b
}

// billionLaughs is the classic alias bomb: ten levels of nine aliases each
// expand to 9^10 strings.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		p := fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, strings.Repeat(p+", ", 8)+p)
	}
	return b.String()
}

// mergeBomb doubles a mapping thirty times through merge keys.
func mergeBomb() string {
	var b strings.Builder
	b.WriteString("m0: &m0 {k0: v}\n")
	for i := 1; i < 30; i++ {
		fmt.Fprintf(&b, "m%d: &m%d {<<: [*m%d, *m%d], k%d: v}\n", i, i, i-1, i-1, i)
	}
	return b.String()
}

// deepBlock nests n block mappings: valid YAML that declares nothing.
func deepBlock(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(strings.Repeat(" ", i))
		b.WriteString("a:\n")
	}
	return b.String()
}

// overLimit is a valid pod padded with comments to one byte over limit.
func overLimit(limit int) []byte {
	p := pod("")
	var b strings.Builder
	b.WriteString(p)
	for b.Len() < limit-80 {
		b.WriteString("# " + strings.Repeat("x", 77) + "\n")
	}
	b.WriteString("#" + strings.Repeat("x", limit-b.Len()))
	return []byte(b.String())
}

// manyContainers is a pod of as many badly named containers as fit in n
// bytes: hundreds of thousands of problems.
func manyContainers(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n")
	for i := 0; b.Len() < n-32; i++ {
		fmt.Fprintf(&b, "  - {name: C%d}\n", i)
	}
	return b.String()
}
