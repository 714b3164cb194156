// Package hubtest serves a real hub to the tests of its clients: a token
// source over fixed tokens, and a hub served on loopback until the test ends.
package hubtest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/provider/hub"
)

// Tokens is a hub.Tokens over fixed bootstrap tokens, each mapped to its
// account. Tokens are never used up: Spend does nothing.
type Tokens map[string]string

var _ hub.Tokens = Tokens(nil)

// Account implements hub.Tokens.
func (t Tokens) Account(_ context.Context, tok string) (string, error) {
	if a, ok := t[tok]; ok {
		return a, nil
	}
	return "", errors.New("unknown token")
}

// Spend implements hub.Tokens.
func (t Tokens) Spend(context.Context, string) error { return nil }

// Serve serves srv on a loopback port until the test ends and returns its
// address. It returns once the hub takes connections, so that the hub's
// goroutines exist before a test looks for leaks (goleak.IgnoreCurrent).
func Serve(tb testing.TB, srv *hub.Server) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ctx, lis) })
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write([]byte("x"))
	_, _ = conn.Read(make([]byte, 1)) // the hub's TLS alert or close: it took the connection
	return lis.Addr().String()
}
