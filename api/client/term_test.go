package client

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/podsup/podsup/api/apitest"
	"github.com/podsup/podsup/internal/testenv"
)

// openPTY opens a pseudo-terminal: the test types into and reads from
// main, the command has replica as its terminal.
func openPTY(t *testing.T, rows, cols uint16) (main, replica *os.File) {
	t.Helper()
	// Non-blocking, so that Go's poller waits on them and Close ends a
	// Read in progress.
	main, err := openNonBlock("/dev/ptmx")
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { main.Close() })
	fd := int(main.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	replica, err = openNonBlock(fmt.Sprintf("/dev/pts/%d", n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Close() })
	setSize(t, replica, rows, cols)
	return main, replica
}

func openNonBlock(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

func setSize(t *testing.T, f *os.File, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

func termios(t *testing.T, f *os.File) unix.Termios {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return *tio
}

// TestExecInteractive drives `podsup exec -it` on a pseudo-terminal: the
// terminal goes raw, typed input reaches the container and its output
// comes back, the size arrives at start and after a resize, and the
// terminal is as it was once the session ends, with the remote status.
func TestExecInteractive(t *testing.T) {
	for _, tc := range []struct {
		name     string
		exit     string
		wantCode int
	}{
		{name: "exit 0", exit: "exit", wantCode: 0},
		{name: "exit 3", exit: "exit 3", wantCode: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx, tt := startInteractive(t, "exec", "-it", "web", "--", "shell")
			main, replica, before, screen, done := tt.main, tt.replica, tt.before, tt.screen, tt.done
			screen.WaitFor(t, "$ ")
			raw := termios(t, replica)
			if raw.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
				t.Errorf("terminal not in raw mode during the session: lflag %#x", raw.Lflag)
			}
			waitSizes(t, fx.fake, []remotecommand.TerminalSize{{Width: 80, Height: 24}})

			// Enter in raw mode is \r, which the container reads as typed.
			if _, err := io.WriteString(main, "hello\r"); err != nil {
				t.Fatal(err)
			}
			screen.WaitFor(t, "got: hello\r\n$ ")

			setSize(t, replica, 40, 100)
			if err := syscall.Kill(os.Getpid(), syscall.SIGWINCH); err != nil {
				t.Fatal(err)
			}
			waitSizes(t, fx.fake, []remotecommand.TerminalSize{{Width: 80, Height: 24}, {Width: 100, Height: 40}})

			if _, err := io.WriteString(main, tc.exit+"\r"); err != nil {
				t.Fatal(err)
			}
			r := apitest.Await(t, done, "the session to end")
			if r.code() != tc.wantCode {
				t.Errorf("exit %d (%v), want %d", r.code(), r.err, tc.wantCode)
			}
			if s := fx.fake.last(); !s.tty {
				t.Error("the server saw no tty")
			}
			if after := termios(t, replica); after != before {
				t.Errorf("terminal not restored: %+v, was %+v", after, before)
			}
		})
	}
}

// TestAttachInteractive: attach -it on a terminal sends the size plus one
// first, so that the program attached to redraws, then the size.
func TestAttachInteractive(t *testing.T) {
	fx, tt := startInteractive(t, "attach", "-it", "term")
	main, replica, before, screen, done := tt.main, tt.replica, tt.before, tt.screen, tt.done
	waitSizes(t, fx.fake, []remotecommand.TerminalSize{{Width: 81, Height: 25}, {Width: 80, Height: 24}})
	if _, err := io.WriteString(main, "ls\rexit\r"); err != nil {
		t.Fatal(err)
	}
	r := apitest.Await(t, done, "the session to end")
	if r.err != nil {
		t.Fatalf("attach failed: %v", r.err)
	}
	screen.WaitFor(t, "got: ls\r\n")
	if want := "Session ended, resume using 'podsup attach term-node1 -c tty -n default -i -t' command\n"; r.stdout[len(r.stdout)-len(want):] != want {
		t.Errorf("output %q, want it to end with %q", r.stdout, want)
	}
	if after := termios(t, replica); after != before {
		t.Errorf("terminal not restored: %+v, was %+v", after, before)
	}
}

// interactive is a command running on a pseudo-terminal of 80x24.
type interactive struct {
	main, replica *os.File
	before        unix.Termios // the terminal's settings before the command
	screen        *apitest.Output
	done          chan result // buffered: the command never blocks on exit
}

// startInteractive runs args against a stream fixture on a
// pseudo-terminal, and returns once the session has started.
func startInteractive(t *testing.T, args ...string) (*streamFixture, *interactive) {
	fx := newStreamFixture(t, onUnix)
	main, replica := openPTY(t, 24, 80)
	tt := &interactive{main: main, replica: replica, before: termios(t, replica), screen: readScreen(t, main), done: make(chan result, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // ends a session the test left running
	go func() {
		tt.done <- runApp(ctx, replica, replica, &forceSPDY, fx.args(args...)...)
	}()
	apitest.Await(t, fx.fake.started, "the session to start")
	return fx, tt
}

// readScreen collects what the terminal shows until the test ends.
func readScreen(t *testing.T, main *os.File) *apitest.Output {
	screen := apitest.NewOutput()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(screen, main) // until main is closed
	}()
	t.Cleanup(func() {
		main.Close()
		<-copied
	})
	return screen
}

// waitSizes waits until the latest session has received want.
func waitSizes(t *testing.T, f *fakeContainers, want []remotecommand.TerminalSize) {
	t.Helper()
	if _, ok := testenv.Poll(apitest.WaitLimit, func() bool { return slices.Equal(f.last().resizes, want) }); !ok {
		t.Fatalf("sizes received %v, want %v", f.last().resizes, want)
	}
}
