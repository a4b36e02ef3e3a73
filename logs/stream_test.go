package logs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStreamFormat(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	// Each write happens one second after the one before; ti is the time of
	// write i.
	ti := func(i int) time.Time { return t0.Add(time.Duration(i+1) * time.Second) }
	tests := []struct {
		name   string
		writes []string
		end    string // "stream" closes the stream, "writer" only the Writer
		want   []string
	}{
		{
			name:   "full lines",
			writes: []string{"message\nsecond\n"},
			want:   []string{cri(ti(0), "stdout", "F", "message"), cri(ti(0), "stdout", "F", "second")},
		},
		{
			name:   "empty line",
			writes: []string{"\n"},
			want:   []string{cri(ti(0), "stdout", "F", "")},
		},
		{
			name:   "line across writes is stamped when it ends",
			writes: []string{"hel", "lo\nwor", "ld\n"},
			want:   []string{cri(ti(1), "stdout", "F", "hello"), cri(ti(2), "stdout", "F", "world")},
		},
		{
			name:   "line of exactly MaxLineSize",
			writes: []string{long(MaxLineSize) + "\n"},
			want:   []string{cri(ti(0), "stdout", "F", long(MaxLineSize))},
		},
		{
			name:   "MaxLineSize then newline in the next write",
			writes: []string{long(MaxLineSize), "\n"},
			want:   []string{cri(ti(1), "stdout", "F", long(MaxLineSize))},
		},
		{
			name:   "one byte over MaxLineSize",
			writes: []string{long(MaxLineSize+1) + "\n"},
			want:   []string{cri(ti(0), "stdout", "P", long(MaxLineSize)), cri(ti(0), "stdout", "F", "x")},
		},
		{
			name:   "long line in pieces",
			writes: []string{long(10000), long(10000), long(20000) + "\nnext\n"},
			want: []string{
				cri(ti(1), "stdout", "P", long(MaxLineSize)),
				cri(ti(2), "stdout", "P", long(MaxLineSize)),
				cri(ti(2), "stdout", "F", long(40000-2*MaxLineSize)),
				cri(ti(2), "stdout", "F", "next"),
			},
		},
		{
			name:   "unterminated line written when the stream closes",
			writes: []string{"done\npartial", " end"},
			end:    "stream",
			want:   []string{cri(ti(0), "stdout", "F", "done"), cri(ti(1), "stdout", "F", "partial end")},
		},
		{
			name:   "unterminated line written when the Writer closes",
			writes: []string{"no newline"},
			end:    "writer",
			want:   []string{cri(ti(0), "stdout", "F", "no newline")},
		},
		{
			name:   "unterminated long line",
			writes: []string{long(MaxLineSize + 5)},
			end:    "stream",
			want:   []string{cri(ti(0), "stdout", "P", long(MaxLineSize)), cri(ti(0), "stdout", "F", long(5))},
		},
		{
			name:   "carriage returns and spaces are kept",
			writes: []string{" a b \r\n"},
			want:   []string{cri(ti(0), "stdout", "F", " a b \r")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			w, clk := newTestWriter(t, path)
			s := w.Stream(Stdout)
			for _, data := range tt.writes {
				clk.Step(time.Second)
				mustWrite(t, s, data)
			}
			clk.Step(time.Hour) // closing is not when the data came
			switch tt.end {
			case "stream":
				s.Close()
			case "writer":
				w.Close()
			}
			if got, want := readFile(t, path), strings.Join(tt.want, ""); got != want {
				t.Errorf("log file:\n%.300q\nwant:\n%.300q", got, want)
			}
		})
	}
}

func TestStreamRecordText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, _ := newTestWriter(t, path)
	mustWrite(t, w.Stream(Stdout), "message\n")
	mustWrite(t, w.Stream(Stderr), "oops\n")
	want := "2016-10-06T00:17:09.669794202Z stdout F message\n2016-10-06T00:17:09.669794202Z stderr F oops\n"
	if got := readFile(t, path); got != want {
		t.Errorf("log file = %q, want %q", got, want)
	}
}

func TestStreamWriteAfterClose(t *testing.T) {
	w, _ := newTestWriter(t, filepath.Join(t.TempDir(), "0.log"))
	s := w.Stream(Stdout)
	s.Close()
	if _, err := s.Write([]byte("x\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want os.ErrClosed", err)
	}
}
