package logs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPaths(t *testing.T) {
	dir := ContainerDir("/var/log/pods", "kube-system", "etcd-node1", "6d3c1a2b", "etcd")
	if want := "/var/log/pods/kube-system_etcd-node1_6d3c1a2b/etcd"; dir != want {
		t.Errorf("ContainerDir = %q, want %q", dir, want)
	}
	if got, want := FilePath(dir, 3), "/var/log/pods/kube-system_etcd-node1_6d3c1a2b/etcd/3.log"; got != want {
		t.Errorf("FilePath = %q, want %q", got, want)
	}
}

func TestParseLogName(t *testing.T) {
	tests := []struct {
		name string
		want logName
		ok   bool
	}{
		{"0.log", logName{restart: 0}, true},
		{"12.log", logName{restart: 12}, true},
		{"1.log.20240102-150405", logName{restart: 1, rotated: true, key: rotKey{ts: "20240102-150405"}}, true},
		{"1.log.20240102-150405.2", logName{restart: 1, rotated: true, key: rotKey{ts: "20240102-150405", seq: 2}}, true},
		{"1.log.20240102-150405.10", logName{restart: 1, rotated: true, key: rotKey{ts: "20240102-150405", seq: 10}}, true},
		{"1.log.20240102-150405.gz", logName{}, false},
		{"1.log.20240102-150405.0", logName{}, false},
		{"1.log.20240102-1504", logName{}, false},
		{"1.log.20240102_150405", logName{}, false},
		{"1.log.tmp", logName{}, false},
		{"1.logx", logName{}, false},
		{"-1.log", logName{}, false},
		{"+1.log", logName{}, false},
		{"a.log", logName{}, false},
		{".log", logName{}, false},
		{"notes.txt", logName{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseLogName(tt.name)
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseLogName = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRotationsSortByKey(t *testing.T) {
	keys := []rotKey{{"20240102-150405", 10}, {"20240102-150405", 2}, {"20240102-150404", 0}, {"20240102-150405", 0}}
	slices.SortFunc(keys, func(a, b rotKey) int {
		if a.less(b) {
			return -1
		}
		return 1
	})
	var names []string
	for _, k := range keys {
		names = append(names, k.name("0.log"))
	}
	want := []string{"0.log.20240102-150404", "0.log.20240102-150405", "0.log.20240102-150405.2", "0.log.20240102-150405.10"}
	if !slices.Equal(names, want) {
		t.Errorf("order = %q, want %q", names, want)
	}
}

func TestPrune(t *testing.T) {
	files := []string{
		"0.log", "0.log.20240102-150405",
		"1.log", "1.log.20240102-150405", "1.log.20240102-150405.1",
		"2.log", "2.log.20240102-150406",
		"3.log",
		"notes.txt",
	}
	tests := []struct {
		name     string
		keepFrom int
		want     []string
	}{
		{"keep all", 0, files},
		{"keep the last two", 2, []string{"2.log", "2.log.20240102-150406", "3.log", "notes.txt"}},
		{"keep none", 10, []string{"notes.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range files {
				writeLog(t, filepath.Join(dir, name))
			}
			if err := Prune(dir, tt.keepFrom); err != nil {
				t.Fatal(err)
			}
			got, want := dirNames(t, dir), slices.Clone(tt.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("left %q, want %q", got, want)
			}
		})
	}
	if err := Prune(filepath.Join(t.TempDir(), "missing"), 1); err != nil {
		t.Errorf("Prune of a missing directory = %v", err)
	}
	if err := Prune("/proc/self/status", 1); err == nil || os.IsNotExist(err) {
		t.Errorf("Prune of a file = %v, want an error", err)
	}
}
