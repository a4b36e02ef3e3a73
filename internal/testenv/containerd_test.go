package testenv

import "testing"

func TestParseMajor(t *testing.T) {
	for _, c := range []struct {
		name, out string
		want      int
		wantErr   bool
	}{
		{"debian 1.6", "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n", 1, false},
		{"built 2.3", "containerd github.com/containerd/containerd/v2 v2.3.7 \n", 2, false},
		{"release 1.7", "containerd github.com/containerd/containerd v1.7.35 abcdef\n", 1, false},
		{"empty", "", 0, true},
		{"no version", "containerd github.com/containerd/containerd dev\n", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseMajor(c.out)
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("parseMajor(%q) = %d, %v; want %d, error %v", c.out, got, err, c.want, c.wantErr)
			}
		})
	}
}
