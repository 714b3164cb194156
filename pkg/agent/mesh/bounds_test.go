package mesh_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/mesh"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/test/poll"
)

// closedWithin reports whether the server ends c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return err == nil // io.Copy returns nil on EOF, a timeout error otherwise
}

// TestUnauthenticatedConnectionsBounded opens more silent connections from
// one address than the mesh keeps waiting for a handshake: the ones beyond
// the bound are closed at once, well before the handshake timeout, and a
// real peer still gets through once the flood is gone.
func TestUnauthenticatedConnectionsBounded(t *testing.T) {
	ca, err := identity.NewCA("fabric", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a1 := start(t, device(t, ca, identity.Device{ID: "a1", Account: "a"}), ca.Pool(), nil)
	a2 := start(t, device(t, ca, identity.Device{ID: "a2", Account: "a"}), ca.Pool(), nil)
	addr := mesh.JoinHostPort("127.0.0.1", a1.Port())
	var silent []net.Conn
	for range mesh.MaxHandshakesPerAddress {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// Accepted after the silent ones: the listener takes connections in order.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if !closedWithin(extra, 2*time.Second) {
		t.Errorf("connection beyond %d waiting handshakes from one address: not closed within 2s (the handshake timeout is 5s)", mesh.MaxHandshakesPerAddress)
	}
	for _, c := range silent {
		c.Close()
	}
	poll.Until(t, 10*time.Second, func() bool { _, err := a2.Probe(t.Context(), addr, "a1"); return err == nil })
}

// TestLongLineDropsPeer sends a proven peer's line longer than the mesh
// reads: the mesh hangs up instead of buffering it.
func TestLongLineDropsPeer(t *testing.T) {
	ca, err := identity.NewCA("fabric", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a1 := start(t, device(t, ca, identity.Device{ID: "a1", Account: "a"}), ca.Pool(), nil)
	a2 := device(t, ca, identity.Device{ID: "a2", Account: "a"})
	c, err := tls.Dial("tcp", mesh.JoinHostPort("127.0.0.1", a1.Port()), &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{*a2.Certificate},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A ping padded past the bound, never ended by a newline.
	line := append([]byte(`{"type":"ping","seq":1,"pad":"`), bytes.Repeat([]byte{'x'}, 2*mesh.MaxLineBytes)...)
	go func() { _, _ = c.Write(line) }()
	if !closedWithin(c, 3*time.Second) {
		t.Errorf("a line of more than %d bytes: the connection stayed open", mesh.MaxLineBytes)
	}
}
