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
	// Its handlers are in place once it catches SIGTERM and SIGINT and
	// ignores SIGCHLD; a SIGTERM before that would kill it by default.
	statusFile := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "status")
	var status map[string]string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		data, err := os.ReadFile(statusFile)
		if err != nil {
			t.Fatal(err)
		}
		status = procFields(string(data))
		if sigSet(status["SigCgt"], syscall.SIGTERM, syscall.SIGINT) && sigSet(status["SigIgn"], syscall.SIGCHLD) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pause set up no handlers within a minute: caught %s, ignored %s", status["SigCgt"], status["SigIgn"])
		}
	}
	kb, err := strconv.Atoi(strings.Fields(status["VmRSS"])[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pause VmRSS: %d KiB", kb)
	if kb >= 1024 {
		t.Errorf("pause RSS %d KiB, want under 1 MiB", kb)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pause did not exit 0 on SIGTERM: %v", err)
	}
}

// procFields are the fields of a /proc/PID/status file, by name.
func procFields(status string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// sigSet reports whether a signal mask of /proc/PID/status (SigCgt, SigIgn)
// holds every one of sigs.
func sigSet(mask string, sigs ...syscall.Signal) bool {
	bits, err := strconv.ParseUint(mask, 16, 64)
	if err != nil {
		return false
	}
	for _, s := range sigs {
		if bits&(1<<(uint(s)-1)) == 0 {
			return false
		}
	}
	return true
}
