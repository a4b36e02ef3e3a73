package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPauseBinary runs the generated pause program on the host: it must keep
// running, stay tiny, and exit 0 on SIGTERM.
func TestPauseBinary(t *testing.T) {
	b, err := PauseImage()
	if err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(bin, b.Files[0].Data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rss, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.Fields(rss)[0])
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("pause VmRSS: %d KiB", kb)
			if kb >= 1024 {
				t.Errorf("pause RSS %d KiB, want under 1 MiB", kb)
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pause did not exit 0 on SIGTERM: %v", err)
	}
}
