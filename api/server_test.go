package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/podsup/podsup/api/apitest"
)

// serve runs h on a loopback port until the test ends.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, h, slog.New(slog.DiscardHandler), false) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestSlowClientTimesOut: a client that stops in the middle of its headers
// is dropped. The timeout is net/http's, on the real clock: short, so the
// test is quick, and the read timeout, which would drop the client too, is
// an hour, so only the header timeout can within the minute the test waits.
// Whether the client's bytes arrive before the timeout or after, the server
// closes the connection.
func TestSlowClientTimesOut(t *testing.T) {
	oldHeader, oldRead := readHeaderTimeout, readTimeout
	readHeaderTimeout, readTimeout = 200*time.Millisecond, time.Hour
	t.Cleanup(func() { readHeaderTimeout, readTimeout = oldHeader, oldRead })
	addr := serve(t, ReadOnlyHandler(testDeps(t)))

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /pods HTTP/1.1\r\nHost: x\r\n") // and never the blank line
	conn.SetReadDeadline(time.Now().Add(apitest.WaitLimit))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server did not close a slow client's connection in %s", apitest.WaitLimit)
	}
	// A connection closed before the client's bytes came is reset: closed
	// all the same.
	t.Logf("a client that stopped mid-header was dropped after %s (%v)", time.Since(start).Round(time.Millisecond), err)
}

func TestHugeHeaderRefused(t *testing.T) {
	addr := serve(t, ReadOnlyHandler(testDeps(t)))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /pods HTTP/1.1\r\nHost: x\r\nX-Junk: "+strings.Repeat("a", 2*maxHeaderBytes)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a %d-byte header: %s", 2*maxHeaderBytes, resp.Status)
	}
}

// TestShutdownEndsStreams: a watch in progress ends when the server shuts
// down, and the shutdown is clean rather than cut short by its grace.
func TestShutdownEndsStreams(t *testing.T) {
	old := shutdownGrace
	shutdownGrace = apitest.WaitLimit // longer than the test waits
	t.Cleanup(func() { shutdownGrace = old })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1) // buffered: the server never blocks on exit
	go func() { done <- ServeListener(ctx, ln, FullHandler(testDeps(t)), slog.New(slog.DiscardHandler), true) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/events?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewReader(resp.Body)
	if line, err := body.ReadString('\n'); err != nil || !strings.Contains(line, "Unhealthy") {
		t.Fatalf("first line of the watch: %q %v", line, err)
	}
	cancel()
	if err := apitest.Await(t, done, "the server to shut down"); err != nil {
		t.Fatalf("the shutdown: %v", err)
	}
	if rest, err := io.ReadAll(body); err != nil || len(rest) > 0 {
		t.Errorf("the watch ended with %q, %v; want its end", rest, err)
	}
}
