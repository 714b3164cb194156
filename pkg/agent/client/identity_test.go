package client_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/hub"
	"github.com/edgefabric/edgefabric/pkg/provider/hub/hubtest"
	"github.com/edgefabric/edgefabric/test/poll"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time       { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Step(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// TestTokenFileAndRenewalAfterExpiry runs the client against a real hub on
// a stepped clock: it joins with the token file and removes it; offline
// past its certificate's expiry it renews with its own key, no token
// needed; past the hub's renewal grace it stops with an error asking for a
// token, and joins again once given one.
func TestTokenFileAndRenewalAfterExpiry(t *testing.T) {
	clk := &clock{now: time.Now()}
	const ttl, grace = time.Hour, 24 * time.Hour
	ca, err := identity.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	fab := fabric.New(log)
	fab.MarkReady()
	srv, err := hub.New(hub.Config{CA: ca, Tokens: hubtest.Tokens{"good": "acme"}, CertTTL: ttl, RenewalGrace: grace, Now: clk.Now}, fab, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := hubtest.Serve(t, srv)
	ctx := t.Context()

	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tokenFile := filepath.Join(dir, "bootstrap-token")
	writeToken := func() {
		t.Helper()
		if err := os.WriteFile(tokenFile, []byte("good\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notAfter := func() time.Time {
		t.Helper()
		id, err := st.Identity()
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(id.CertDER)
		if err != nil {
			t.Fatal(err)
		}
		return c.NotAfter
	}
	// run runs a client until it connected (it returns nil then) or until
	// it returned an error.
	run := func() error {
		t.Helper()
		cl, err := client.New(client.Config{
			Hub: addr, HubCA: ca.Pool(), TokenFile: tokenFile, DeviceID: "pi-1", Now: clk.Now,
			HeartbeatInterval: time.Minute, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		}, st, &work{updates: make(chan struct{})}, nil, log)
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		done := make(chan error, 1)
		go func() { done <- cl.Run(rctx) }()
		var ended error
		poll.Until(t, 20*time.Second, func() bool {
			select {
			case ended = <-done:
				return true
			default:
				return cl.Connected()
			}
		})
		if ended != nil {
			return ended
		}
		stop()
		return <-done
	}

	writeToken()
	if err := run(); err != nil {
		t.Fatalf("join with the token file: %v", err)
	}
	if _, err := os.Stat(tokenFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token file after the join: %v, want it removed", err)
	}
	first := notAfter()

	clk.Step(ttl + time.Hour) // offline past the expiry, within the grace
	if err := run(); err != nil {
		t.Fatalf("renew an expired certificate within the grace: %v", err)
	}
	if renewed := notAfter(); !renewed.After(clk.Now()) || !renewed.After(first) {
		t.Errorf("certificate after the renewal expires %s, want after now %s", renewed, clk.Now())
	}

	clk.Step(ttl + grace + time.Second) // past the grace
	err = run()
	if !errors.Is(err, client.ErrRefused) || !strings.Contains(err.Error(), "longer ago than the hub's renewal grace and no bootstrap token was given") {
		t.Fatalf("past the grace without a token: got %v, want a refusal asking for a token", err)
	}
	writeToken()
	if err := run(); err != nil {
		t.Fatalf("join again with a token past the grace: %v", err)
	}
}
