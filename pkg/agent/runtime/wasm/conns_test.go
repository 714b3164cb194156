package wasm

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConnsClosed checks that a connection a module closes, and the
// connections still open when it is stopped, reach their peer as closed.
func TestConnsClosed(t *testing.T) {
	r := newRuntime(t, sharedCache)
	inst, addr := startHTTPServer(t, r)
	defer inst.Stop(0)

	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// readAll reads until the server closes the connection.
	readAll := func(c net.Conn) string {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("read until the server closes the connection: got %q, %v", b, err)
		}
		return string(b)
	}

	// "Connection: close": the server answers, then closes.
	c := dial()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := readAll(c); !strings.HasSuffix(got, "hello from wasm\n") {
		t.Errorf("answer to a Connection: close request: got %q", got)
	}

	// A kept-alive connection, then Stop.
	kept := dial()
	if _, err := io.WriteString(kept, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(kept)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	inst.Stop(0)
	_ = kept.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(br); err != nil {
		t.Errorf("kept-alive connection after Stop: got %q, %v; want it closed", b, err)
	}
}
