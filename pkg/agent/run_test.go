package agent

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/localapi"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/hub"
	"github.com/edgefabric/edgefabric/pkg/provider/hub/hubtest"
	"github.com/edgefabric/edgefabric/test/poll"
)

// startHub serves a hub that knows the bootstrap token "good" until the
// test ends, and returns its address and the file of its CA.
func startHub(t *testing.T) (addr, caFile string) {
	t.Helper()
	ca, err := identity.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _, err := ca.PEM()
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	fab := fabric.New(log)
	fab.MarkReady()
	srv, err := hub.New(hub.Config{CA: ca, Tokens: hubtest.Tokens{"good": "acme"}}, fab, log)
	if err != nil {
		t.Fatal(err)
	}
	return hubtest.Serve(t, srv), caFile
}

// testConfig configures an agent of its own device (named after the test).
func testConfig(t *testing.T, hubAddr, caFile, token string) Config {
	return Config{
		Hub: hubAddr, HubCA: caFile, Token: token, DataDir: t.TempDir(), DeviceID: "pi-" + strings.ToLower(strings.ReplaceAll(filepath.Base(t.Name()), "_", "-")),
		AdvertiseAddress: "127.0.0.1", MeshListen: "127.0.0.1:0", MemoryBytes: 1 << 30,
	}
}

// TestRunEndsWithItsParts: Run returns once every part it started has
// ended: nil when its context ends, and the first error of a part as soon
// as that part fails — the hub client's refusal of its token, or the scope
// watcher's refusal of its configuration once the device joined.
func TestRunEndsWithItsParts(t *testing.T) {
	hubAddr, caFile := startHub(t)
	t.Run("context ends", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		cfg := testConfig(t, hubAddr, caFile, "good")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
		poll.Until(t, 60*time.Second, func() bool {
			st, err := localapi.Get(t.Context(), localapi.SocketPath(cfg.DataDir))
			return err == nil && st.Connected
		})
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after its context ended: got %v, want nil", err)
		}
	})
	t.Run("the hub client fails", func(t *testing.T) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		cfg := testConfig(t, hubAddr, caFile, "bad")
		err := Run(t.Context(), cfg, slog.New(slog.DiscardHandler))
		if !errors.Is(err, client.ErrRefused) {
			t.Errorf("Run with a token the hub refuses: got %v, want an error wrapping client.ErrRefused", err)
		}
	})
	// The scope watcher's errors end Run the same way; the one a
	// configuration could cause (a negative discovery interval) is now
	// refused before anything runs (TestRunRefusesNegativeIntervals).
}

// TestRunRefusesNegativeIntervals: an interval the agent ticks by must not
// be negative (time.NewTicker panics on one, once the device connected or
// joined); Validate says so before anything runs.
func TestRunRefusesNegativeIntervals(t *testing.T) {
	hubAddr, caFile := startHub(t)
	for name, set := range map[string]func(*Config){
		"heartbeat": func(c *Config) { c.HeartbeatInterval = -time.Second },
		"lan":       func(c *Config) { c.LANInterval = -time.Second },
		"probe":     func(c *Config) { c.ProbeInterval = -time.Second },
		"restart":   func(c *Config) { c.RestartBackoff = -time.Second },
		"discovery": func(c *Config) { c.DiscoveryInterval = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, hubAddr, caFile, "good")
			set(&cfg)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := Run(ctx, cfg, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), "must not be negative") {
				t.Errorf("Run: got %v, want the configuration refused", err)
			}
		})
	}
}
