package localapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

func serve(t *testing.T, path string, st Status) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, path, func() Status { return st }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := Get(t.Context(), path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("local API did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() error {
		cancel()
		return <-done
	}
}

func TestServeGet(t *testing.T) {
	path := SocketPath(t.TempDir())
	want := Status{
		Version: "v1", Device: "dev", Account: "acme", Hub: "hub:7443", Connected: true,
		Started: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Clusters: []string{"account acme"},
		Workloads: []Workload{{Namespace: "default", Name: "p", UID: "u", Phase: "Running", Containers: []Container{{Name: "app", State: "Running", Restarts: 2}}}},
	}
	stop := serve(t, path, want)
	got, err := Get(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v, want 0600", fi.Mode(), err)
	}
	// A second agent on the same data directory is refused.
	if err := Serve(t.Context(), path, func() Status { return Status{} }, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "another agent") {
		t.Errorf("second Serve on a live socket: %v, want another agent answers", err)
	}
	if err := stop(); err != nil {
		t.Errorf("Serve returned %v after ctx ended", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := Get(t.Context(), path); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Get with no agent: %v, want ErrNotRunning", err)
	}
}

// A socket file left by an agent that was killed is replaced.
func TestServeReplacesStaleSocket(t *testing.T) {
	path := SocketPath(t.TempDir())
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := Get(t.Context(), path); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Get on a stale socket: %v, want ErrNotRunning", err)
	}
	stop := serve(t, path, Status{Device: "d"})
	if got, err := Get(t.Context(), path); err != nil || got.Device != "d" {
		t.Errorf("after replacing the stale socket: %+v, %v", got, err)
	}
	_ = stop()
}

func TestWrite(t *testing.T) {
	now := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		st   Status
		want []string
	}{
		{"not joined", Status{Device: "d", Hub: "h:1", Started: now.Add(-time.Minute)},
			[]string{"Account:              (not joined yet)", "none (not joined yet)", "h:1, disconnected (reconnecting)", "Clusters:             (none yet)", "Workloads: 0"}},
		{"running", Status{Device: "d", Account: "a", Hub: "h:1", Connected: true, CertificateExpires: now.Add(90 * time.Minute), Clusters: []string{"account a"},
			Workloads: []Workload{{Namespace: "ns", Name: "p", Phase: "Running", Containers: []Container{{Name: "app", State: "Waiting", Reason: reasons.CrashLoopBackOff, Restarts: 3}}}}},
			[]string{"2026-01-02T13:30:00Z (in 1h30m0s)", "h:1, connected", "account a", "Workloads: 1", "ns/p", "Waiting (CrashLoopBackOff)", "3"}},
		{"expired", Status{Device: "d", Account: "a", CertificateExpires: now.Add(-time.Hour)}, []string{"EXPIRED"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := tc.st.Write(&b, now); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}
