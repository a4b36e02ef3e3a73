package runtime

import "testing"

func TestImageID(t *testing.T) {
	const digest = "sha256:0123abcd"
	tests := []struct{ name, want string }{
		{"docker.io/library/busybox:1.36", "docker.io/library/busybox@" + digest},
		{"docker.io/library/busybox", "docker.io/library/busybox@" + digest},
		{"localhost:5000/podsup/pause:abc", "localhost:5000/podsup/pause@" + digest},
		{"localhost:5000/busybox", "localhost:5000/busybox@" + digest},
		{"registry.example/app:v1@sha256:ffff", "registry.example/app@" + digest},
	}
	for _, tc := range tests {
		if got := imageID(tc.name, digest); got != tc.want {
			t.Errorf("imageID(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
