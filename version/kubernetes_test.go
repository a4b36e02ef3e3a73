package version

import (
	"regexp"
	"testing"
)

func TestKubernetes(t *testing.T) {
	if v := Kubernetes(); !regexp.MustCompile(`^v1\.\d+\.\d+`).MatchString(v) {
		t.Errorf("Kubernetes() = %q, want a v1.x.y release", v)
	}
	for in, want := range map[string]string{"v0.37.2": "v1.37.2", "v0.38.0-beta.0": "v1.38.0-beta.0", "v1.2.3": "", "(devel)": ""} {
		got, ok := kubernetesOf(in)
		if got != want || ok != (want != "") {
			t.Errorf("kubernetesOf(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
