package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	goruntime "runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// PortForward copies data between stream and a TCP port of a pod, on its
// loopback address inside the pod's network namespace (netns; "" for a pod
// on the host's network), as the kubelet's runtimes do. It returns when
// either side ends, having closed both.
func PortForward(ctx context.Context, netns string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	conn, err := dialInNetNS(ctx, netns, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan error, 2) // buffered: neither copy blocks on leaving
	go func() {                 // ends when the pod's side ends, or when conn is closed below
		_, err := io.Copy(stream, conn)
		done <- err
	}()
	go func() { // ends when the client's side ends, or when stream is closed
		_, err := io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // the client is done sending: tell the pod
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	conn.Close()
	stream.Close()
	<-done
	<-done
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// dialInNetNS connects to port on the loopback address of a network
// namespace, IPv4 first then IPv6. The socket is made on a thread that has
// entered the namespace, and keeps to it after the thread leaves.
func dialInNetNS(ctx context.Context, netns string, port int32) (net.Conn, error) {
	dial := func() (net.Conn, error) {
		var d net.Dialer
		conn, err4 := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err4 == nil {
			return conn, nil
		}
		conn, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(int(port))))
		if err6 == nil {
			return conn, nil
		}
		return nil, fmt.Errorf("nothing listens on port %d of the pod: %w", port, err4)
	}
	if netns == "" {
		return dial()
	}
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1) // buffered: the goroutine never blocks on leaving
	go func() {                // ends with the dial
		goruntime.LockOSThread()
		conn, err := inNetNS(netns, dial)
		ch <- result{conn, err}
	}()
	res := <-ch
	return res.conn, res.err
}

// inNetNS runs f on the calling thread, locked by the caller, inside the
// network namespace at path. The thread is unlocked only once it is back in
// its own namespace: otherwise it ends with its goroutine.
func inNetNS(path string, f func() (net.Conn, error)) (net.Conn, error) {
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, fmt.Errorf("own network namespace: %w", err)
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("network namespace of the pod: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter the network namespace of the pod: %w", err)
	}
	conn, err := f()
	if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
		goruntime.UnlockOSThread()
	}
	return conn, err
}
