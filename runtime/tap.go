package runtime

import (
	"io"
	"sync"
)

// tapBuffer is how many chunks of output an attached client may fall
// behind before it is detached: a slow client never stalls the container,
// whose output would otherwise fill its pipe and block it.
const tapBuffer = 256

// chunk is a piece of a container's output.
type chunk struct {
	stream string // logs.Stdout or logs.Stderr
	data   []byte
}

// tap is one attached client's view of a container's output. ch is
// closed when the output ends, the client is detached for falling behind,
// or it leaves.
type tap struct {
	ch      chan chunk
	streams map[string]bool // the streams it wants
}

// tapSet are the clients attached to a task's output.
type tapSet struct {
	mu     sync.Mutex
	taps   map[*tap]struct{}
	closed bool // the output ended; no tap is added any more
}

// add attaches a client that wants the named streams.
func (s *tapSet) add(streams ...string) *tap {
	t := &tap{ch: make(chan chunk, tapBuffer), streams: map[string]bool{}}
	for _, name := range streams {
		t.streams[name] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(t.ch)
		return t
	}
	if s.taps == nil {
		s.taps = map[*tap]struct{}{}
	}
	s.taps[t] = struct{}{}
	return t
}

// remove detaches a client; its channel is closed unless it was already.
func (s *tapSet) remove(t *tap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.taps[t]; ok {
		delete(s.taps, t)
		close(t.ch)
	}
}

// send hands a copy of p to every client that wants the stream, and
// detaches one whose buffer is full.
func (s *tapSet) send(stream string, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.taps {
		if !t.streams[stream] {
			continue
		}
		select {
		case t.ch <- chunk{stream: stream, data: append([]byte(nil), p...)}:
		default:
			delete(s.taps, t)
			close(t.ch)
		}
	}
}

// closeAll detaches every client: the output ended.
func (s *tapSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for t := range s.taps {
		close(t.ch)
	}
	s.taps = nil
}

// tee writes a container's output to its log and to the attached clients.
type tee struct {
	log    io.Writer
	taps   *tapSet
	stream string
}

func (t *tee) Write(p []byte) (int, error) {
	n, err := t.log.Write(p)
	t.taps.send(t.stream, p)
	return n, err
}
