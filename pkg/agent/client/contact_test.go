package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/hub"
)

type tokens map[string]string

func (t tokens) Account(_ context.Context, tok string) (string, error) {
	if a, ok := t[tok]; ok {
		return a, nil
	}
	return "", errors.New("unknown token")
}

func (t tokens) Spend(context.Context, string) error { return nil }

// work counts the desired states the client hands it.
type work struct {
	desired atomic.Int32
	updates chan struct{}
}

func (w *work) SetDesired(uint64, []*hubv1.Workload) error { w.desired.Add(1); return nil }
func (w *work) Apply(*hubv1.WorkloadDelta) error           { return nil }
func (w *work) Generation() uint64                         { return 0 }
func (w *work) Statuses() []*hubv1.WorkloadStatus          { return nil }
func (w *work) Updates() <-chan struct{}                   { return w.updates }
func (w *work) TakeReport() *hubv1.StatusReport            { return nil }

// TestContactAndResync runs the client against a real hub: it hears from
// the hub at least every ContactInterval although heartbeats are rare, and
// Resync ends the session, so that the hub sends its full desired state
// again on the next.
func TestContactAndResync(t *testing.T) {
	ca, err := identity.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	fab := fabric.New(log)
	fab.MarkReady()
	srv, err := hub.New(hub.Config{CA: ca, Tokens: tokens{"good": "acme"}}, fab, log)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = srv.Serve(ctx, lis) })

	st, err := store.Open(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := &work{updates: make(chan struct{})}
	cl, err := client.New(client.Config{
		Hub: lis.Addr().String(), HubCA: ca.Pool(), Token: "good", DeviceID: "pi-1",
		Hello:             func() *hubv1.Hello { return &hubv1.Hello{} },
		HeartbeatInterval: time.Minute,
		ContactInterval:   func() time.Duration { return 600 * time.Millisecond },
	}, st, w, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.LastContact().IsZero() {
		t.Fatal("LastContact before any session: want zero")
	}
	wg.Go(func() { _ = cl.Run(ctx) })

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("first desired state", func() bool { return w.desired.Load() == 1 })
	// Heartbeats come every minute; the probes every 200 ms keep the
	// contact fresh.
	for range 3 {
		time.Sleep(700 * time.Millisecond)
		if ago := time.Since(cl.LastContact()); ago > 600*time.Millisecond {
			t.Fatalf("last contact %v ago, want less than the contact interval 600ms", ago)
		}
	}
	cl.Resync()
	waitFor("desired state of a new session after Resync", func() bool { return w.desired.Load() == 2 && cl.Connected() })
}
