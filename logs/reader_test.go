package logs

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ts is the time of the i-th record of the fixtures.
func ts(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

// twoInstances writes the logs of a container that restarted once: the
// first instance in 0.log, the second in two rotated files and 1.log, whose
// last line "seven" was split into P records with a stderr line between.
func twoInstances(t *testing.T) string {
	dir := t.TempDir()
	writeLog(t, filepath.Join(dir, "0.log"),
		cri(ts(0), "stdout", "F", "old-a"),
		cri(ts(1), "stderr", "F", "old-b"),
	)
	writeLog(t, filepath.Join(dir, "1.log.20161006-001800"),
		cri(ts(10), "stdout", "F", "one"),
		cri(ts(11), "stderr", "F", "two"),
		cri(ts(12), "stdout", "F", "three"),
	)
	writeLog(t, filepath.Join(dir, "1.log.20161006-001800.1"),
		cri(ts(13), "stdout", "F", "four"),
		"not a CRI record\n",
		cri(ts(14), "stdout", "F", "five"),
	)
	writeLog(t, filepath.Join(dir, "1.log"),
		cri(ts(15), "stdout", "F", "six"),
		cri(ts(16), "stdout", "P", "se"),
		cri(ts(17), "stderr", "F", "eight"),
		cri(ts(18), "stdout", "F", "ven"),
		"2016-10-06T00:17:28.669794202Z stdout F being wri", // no newline: still being written
	)
	writeLog(t, filepath.Join(dir, "notes.txt"), "not a log\n")
	return dir
}

func TestReadContainer(t *testing.T) {
	dir := twoInstances(t)
	all := "one\ntwo\nthree\nfour\nnot a CRI record\nfive\nsix\neight\nseven\n"
	tests := []struct {
		name string
		opts ReadOptions
		want string
	}{
		{"all", ReadOptions{TailLines: -1}, all},
		{"tail 0", ReadOptions{TailLines: 0}, ""},
		{"tail 1", ReadOptions{TailLines: 1}, "seven\n"},
		{"tail 2 includes the P record before the stderr line", ReadOptions{TailLines: 2}, "eight\nseven\n"},
		{"tail across rotated files", ReadOptions{TailLines: 6}, "four\nnot a CRI record\nfive\nsix\neight\nseven\n"},
		{"tail more than there is", ReadOptions{TailLines: 100}, all},
		{"since", ReadOptions{TailLines: -1, Since: ts(14)}, "five\nsix\neight\nseven\n"},
		{"since keeps a malformed line after a kept one", ReadOptions{TailLines: -1, Since: ts(13)}, "four\nnot a CRI record\nfive\nsix\neight\nseven\n"},
		{"since and tail", ReadOptions{TailLines: 3, Since: ts(17)}, "eight\n"},
		{"a joined line has the time of its first record", ReadOptions{TailLines: -1, Since: ts(17)}, "eight\n"},
		{
			"timestamps", ReadOptions{TailLines: 3, Timestamps: true},
			stamp(ts(15)) + " six\n" + stamp(ts(17)) + " eight\n" + stamp(ts(16)) + " seven\n",
		},
		{"limit bytes", ReadOptions{TailLines: -1, LimitBytes: 10}, "one\ntwo\nth"},
		{"limit bytes at a line end", ReadOptions{TailLines: -1, LimitBytes: 8}, "one\ntwo\n"},
		{"previous", ReadOptions{TailLines: -1, Previous: true}, "old-a\nold-b\n"},
		{"previous tail", ReadOptions{TailLines: 1, Previous: true, Timestamps: true}, stamp(ts(1)) + " old-b\n"},
		{"previous does not follow: it has ended", ReadOptions{TailLines: -1, Previous: true, Follow: true}, "old-a\nold-b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(t, dir, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("output:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}

func TestReadContainerErrors(t *testing.T) {
	one := t.TempDir()
	writeLog(t, filepath.Join(one, "3.log"), cri(ts(0), "stdout", "F", "x"))
	tests := []struct {
		name string
		dir  string
		opts ReadOptions
		want error
	}{
		{"no directory", filepath.Join(t.TempDir(), "missing"), ReadOptions{}, ErrNoLogs},
		{"empty directory", t.TempDir(), ReadOptions{}, ErrNoLogs},
		{"no previous instance", one, ReadOptions{Previous: true}, ErrNoPrevious},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := read(t, tt.dir, tt.opts); !errors.Is(err, tt.want) {
				t.Errorf("ReadContainer = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadContainerPreviousSkipsGaps(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, filepath.Join(dir, "2.log"), cri(ts(0), "stdout", "F", "two"))
	writeLog(t, filepath.Join(dir, "7.log"), cri(ts(1), "stdout", "F", "seven"))
	got, err := read(t, dir, ReadOptions{TailLines: -1, Previous: true})
	if err != nil || got != "two\n" {
		t.Errorf("ReadContainer = %q, %v; want the instance before the newest", got, err)
	}
}

func TestReadLongLines(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWriter(t, FilePath(dir, 0))
	s := w.Stream(Stdout)
	joined := strings.Repeat("j", 3*MaxLineSize+100)
	huge := strings.Repeat("h", maxJoined*5/2)
	mustWrite(t, s, "first\n"+joined+"\n"+huge+"\nlast\n")
	f, err := os.OpenFile(FilePath(dir, 0), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := strings.Repeat("g", 100<<10) // longer than a read buffer
	f.WriteString(garbage + "\n")
	f.Close()
	pieces := huge[:maxJoined] + "\n" + huge[maxJoined:2*maxJoined] + "\n" + huge[2*maxJoined:] + "\n"
	tests := []struct {
		name string
		tail int64
		want string
	}{
		{"all: lines past the joining limit come in pieces", -1, "first\n" + joined + "\n" + pieces + "last\n" + garbage + "\n"},
		{"tail counts a line in pieces once, and keeps its last piece", 3, huge[2*maxJoined:] + "\nlast\n" + garbage + "\n"},
		{"tail 5", 5, "first\n" + joined + "\n" + pieces + "last\n" + garbage + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(t, dir, ReadOptions{TailLines: tt.tail})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("output (%d bytes) is not the %d bytes wanted", len(got), len(tt.want))
			}
		})
	}
}

// TestTailMatchesFullRead checks TailLines against the end of a full read,
// on random logs where lines split into P records interleave with the
// other stream's, across rotated files.
func TestTailMatchesFullRead(t *testing.T) {
	for seed := int64(0); seed < 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			dir := randomLog(t, seed)
			full, err := read(t, dir, ReadOptions{TailLines: -1})
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(full, "\n")
			lines = lines[:len(lines)-1]
			for n := 0; n <= len(lines)+1; n++ {
				got, err := read(t, dir, ReadOptions{TailLines: int64(n)})
				if err != nil {
					t.Fatal(err)
				}
				if want := strings.Join(lines[max(len(lines)-n, 0):], ""); got != want {
					t.Fatalf("tail %d:\n%q\nwant:\n%q\nfull:\n%q", n, got, want, full)
				}
			}
		})
	}
}

// randomLog writes the files of one instance with random records.
func randomLog(t *testing.T, seed int64) string {
	rnd := rand.New(rand.NewSource(seed))
	var records []string
	for i := 0; i < 10+rnd.Intn(40); i++ {
		stream := []string{"stdout", "stderr"}[rnd.Intn(2)]
		tag := []string{"F", "P", "P"}[rnd.Intn(3)]
		msg := fmt.Sprintf("%s%d", stream[3:], i)
		if rnd.Intn(15) == 0 {
			records = append(records, "garbage "+msg+"\n")
			continue
		}
		records = append(records, cri(ts(i), stream, tag, msg))
	}
	if rnd.Intn(2) == 0 {
		records = append(records, cri(ts(99), "stdout", "F", "unfinished")[:20])
	}
	dir := t.TempDir()
	a, b := rnd.Intn(len(records)), rnd.Intn(len(records))
	a, b = min(a, b), max(a, b)
	writeLog(t, filepath.Join(dir, "0.log.20240101-000000"), records[:a]...)
	writeLog(t, filepath.Join(dir, "0.log.20240101-000001"), records[a:b]...)
	writeLog(t, filepath.Join(dir, "0.log"), records[b:]...)
	return dir
}
