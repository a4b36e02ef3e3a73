package client

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/term"
	"k8s.io/client-go/tools/remotecommand"
)

// terminal is the local terminal of an interactive session (-i -t). It is
// golang.org/x/term and a SIGWINCH watch rather than kubectl's
// pkg/util/term, which would bring kubectl's printers into podsup.
type terminal struct {
	fd    int
	state *term.State // as it was before raw mode; nil until then
}

// openTerminal returns in as a terminal, or false when it is not one.
func openTerminal(in io.Reader) (*terminal, bool) {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, false
	}
	return &terminal{fd: int(f.Fd())}, true
}

// makeRaw puts the terminal in raw mode, so that every key, Ctrl-C
// included, goes to the container as typed; restore undoes it.
func (t *terminal) makeRaw() error {
	state, err := term.MakeRaw(t.fd)
	if err != nil {
		return fmt.Errorf("raw mode on the terminal: %w", err)
	}
	t.state = state
	return nil
}

// restore puts the terminal back as makeRaw found it.
func (t *terminal) restore() error {
	if t.state == nil {
		return nil
	}
	if err := term.Restore(t.fd, t.state); err != nil {
		return fmt.Errorf("restore the terminal: %w", err)
	}
	return nil
}

// size is the terminal's size, or false when it cannot be read.
func (t *terminal) size() (remotecommand.TerminalSize, bool) {
	w, h, err := term.GetSize(t.fd)
	if err != nil || w <= 0 || h <= 0 {
		return remotecommand.TerminalSize{}, false
	}
	return remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}, true
}

// sizeQueue is the terminal's sizes as client-go reads them: first, then
// one each time the terminal is resized (SIGWINCH), only the latest when
// client-go is slow to take them.
type sizeQueue struct {
	sizes chan remotecommand.TerminalSize // unbuffered: a size is sent when taken
	done  chan struct{}                   // closed when the watch has returned
}

var _ remotecommand.TerminalSizeQueue = (*sizeQueue)(nil)

// watchSize sends first, then the terminal's size at start and on every
// SIGWINCH until ctx ends; then Next returns nil, which ends client-go's
// reader. first lets attach send a size the container's program has not
// seen, so that it redraws the screen (kubectl sends the size plus one).
func (t *terminal) watchSize(ctx context.Context, first ...remotecommand.TerminalSize) *sizeQueue {
	q := &sizeQueue{sizes: make(chan remotecommand.TerminalSize), done: make(chan struct{})}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	go func() {
		defer close(q.done)
		defer close(q.sizes)
		defer signal.Stop(winch)
		var latest *remotecommand.TerminalSize // not yet taken
		if s, ok := t.size(); ok {
			latest = &s
		}
		for {
			var out chan remotecommand.TerminalSize // nil, so no send, when there is nothing to send
			var next remotecommand.TerminalSize
			switch {
			case len(first) > 0:
				out, next = q.sizes, first[0]
			case latest != nil:
				out, next = q.sizes, *latest
			}
			select {
			case out <- next:
				if len(first) > 0 {
					first = first[1:]
				} else {
					latest = nil
				}
			case <-winch:
				if s, ok := t.size(); ok {
					latest = &s
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return q
}

// Next returns the next size, or nil once the session is over.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q.sizes
	if !ok {
		return nil
	}
	return &s
}

// wait returns once the watch has stopped.
func (q *sizeQueue) wait() { <-q.done }

// session sets up the terminal of an interactive session and undoes it:
// raw mode on, sizes watched; stop ends the watch and restores the
// terminal, whatever ended the session.
type session struct {
	term   *terminal
	sizes  *sizeQueue
	cancel context.CancelFunc
	once   sync.Once
}

func startSession(ctx context.Context, t *terminal, first ...remotecommand.TerminalSize) (*session, error) {
	if err := t.makeRaw(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	return &session{term: t, sizes: t.watchSize(ctx, first...), cancel: cancel}, nil
}

// stop ends the size watch and restores the terminal; it may be called
// more than once.
func (s *session) stop() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		s.sizes.wait()
		err = s.term.restore()
	})
	return err
}
