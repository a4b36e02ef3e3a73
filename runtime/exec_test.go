package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/podsup/podsup/internal/testenv"
)

// goneProcess is an exec process whose container went while it ran: the
// shim no longer knows it.
type goneProcess struct{ client.Process }

func (goneProcess) Delete(context.Context, ...client.ProcessDeleteOpts) (*client.ExitStatus, error) {
	return nil, errdefs.ErrNotFound
}

// openIn counts this process's descriptors open on files under dir.
func openIn(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir) {
			n++
		}
	}
	return n
}

// TestDeleteExecClosesFIFOsWhenTheShimForgot: an exec whose container went
// while it ran cannot be deleted, and containerd's Delete then leaves its
// FIFOs open and their copies running; deleteExec closes them.
func TestDeleteExecClosesFIFOsWhenTheShimForgot(t *testing.T) {
	dir := t.TempDir()
	streams, err := cio.NewCreator(cio.WithStreams(nil, NewHeadBuffer(10), NewHeadBuffer(10)), cio.WithFIFODir(dir))("exec-1")
	if err != nil {
		t.Fatal(err)
	}
	if n := openIn(t, dir); n == 0 {
		t.Fatal("the exec's FIFOs are not open: the test proves nothing")
	}
	deleteExec(context.Background(), goneProcess{}, streams)
	// The FIFO package closes a descriptor its opening goroutine got a
	// moment after Close returns; without deleteExec's close they stay.
	if _, ok := testenv.Poll(time.Minute, func() bool { return openIn(t, dir) == 0 }); !ok {
		t.Fatalf("%d descriptors still open on the exec's FIFOs after a minute", openIn(t, dir))
	}
}
