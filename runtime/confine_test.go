package runtime

import (
	"context"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	v1 "k8s.io/api/core/v1"
)

// TestUserLabel: the user and groups a container's spec ends with are
// kept in its labels and read back for its status; a missing or damaged
// label is no user rather than a wrong one.
func TestUserLabel(t *testing.T) {
	c := &containers.Container{Labels: map[string]string{LabelName: "app"}}
	s := &oci.Spec{Process: &specs.Process{User: specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534, 600}}}}
	if err := labelUser(context.Background(), nil, c, s); err != nil {
		t.Fatal(err)
	}
	want := &v1.LinuxContainerUser{UID: 65534, GID: 65534, SupplementalGroups: []int64{65534, 600}}
	if got := parseUser(c.Labels[LabelUser]); !reflect.DeepEqual(got, want) {
		t.Errorf("label %q reads as %+v, want %+v", c.Labels[LabelUser], got, want)
	}
	if c.Labels[LabelName] != "app" {
		t.Error("the other labels were lost")
	}
	for _, bad := range []string{"", "1:2", "x:2:3", "1:2:3,y"} {
		if u := parseUser(bad); u != nil {
			t.Errorf("%q reads as %+v, want nil", bad, u)
		}
	}
	if u := parseUser("0:0:"); u == nil || u.SupplementalGroups != nil {
		t.Errorf(`"0:0:" reads as %+v, want root with no groups`, u)
	}
}
