package testenv

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

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

func TestDroppedByShimSplit(t *testing.T) {
	log, err := os.Create(filepath.Join(t.TempDir(), "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	c := &Containerd{t: t, log: log}
	before := `time="T" level=info msg="cleaning leaked shim process" error="container not created: not found" id=old_pause.0 namespace=ns` + "\n"
	after := `time="T" level=info msg="connecting to shim ab_main.0.0" address="unix:///s/1" namespace=ns
time="T" level=info msg="cleaning leaked shim process" error="container not created: not found" id=ab_main.0.0 namespace=ns
time="T" level=info msg="cleaning leaked shim process" id=cd_main.0.1 namespace=ns
time="T" level=info msg="cleaning leaked shim process" error="container not created: not found" id=ab_pause.0 namespace=ns
`
	if _, err := log.WriteString(before); err != nil {
		t.Fatal(err)
	}
	_, offset := c.DroppedByShimSplit(0)
	if _, err := log.WriteString(after); err != nil {
		t.Fatal(err)
	}
	got, end := c.DroppedByShimSplit(offset)
	// cd_main.0.1 had no processes (a create cut short): not a split.
	if want := map[string]bool{"ab_main.0.0": true, "ab_pause.0": true}; !reflect.DeepEqual(got, want) || end != int64(len(before)+len(after)) {
		t.Errorf("got %v up to %d, want %v up to %d", got, end, want, len(before)+len(after))
	}
}
