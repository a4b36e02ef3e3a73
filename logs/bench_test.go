package logs

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
)

// BenchmarkWriter measures how fast a stream turns 100-byte lines into
// records on disk, rotations at the default size included: one line a
// Write, as a container that flushes each line produces them, and 32 KiB a
// Write, as a busy container's pipe delivers them.
func BenchmarkWriter(b *testing.B) {
	line := append(bytes.Repeat([]byte("x"), 99), '\n')
	for _, bench := range []struct {
		name  string
		lines int // a Write
	}{
		{"line-per-write", 1},
		{"32KiB-writes", 32 << 10 / len(line)},
	} {
		b.Run(bench.name, func(b *testing.B) {
			w, err := NewWriter(filepath.Join(b.TempDir(), "0.log"), WithLogger(quietLogger()))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			s := w.Stream(Stdout)
			data := bytes.Repeat(line, bench.lines)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.Write(data)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*bench.lines)/b.Elapsed().Seconds(), "lines/s")
			if st := w.Stats(); st.DroppedLines != 0 {
				b.Fatalf("dropped %d lines", st.DroppedLines)
			}
		})
	}
}

// BenchmarkReadTail measures `logs --tail=10` on an instance with the
// default maximum of files, 50 MiB of 100-byte lines: it reads from the end
// and does not depend on the size.
func BenchmarkReadTail(b *testing.B) {
	dir := b.TempDir()
	w, err := NewWriter(FilePath(dir, 0), WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	s := w.Stream(Stdout)
	data := bytes.Repeat(append(bytes.Repeat([]byte("x"), 99), '\n'), 1<<10)
	for range 4 * DefaultMaxSize / len(data) {
		s.Write(data)
	}
	w.Close()
	b.ResetTimer()
	for range b.N {
		if err := ReadContainer(context.Background(), dir, ReadOptions{TailLines: 10}, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
