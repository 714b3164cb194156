package client_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/clock/clocktest"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/hub"
	"github.com/edgefabric/edgefabric/pkg/provider/hub/hubtest"
	"github.com/edgefabric/edgefabric/test/poll"
)

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

// TestContactAndResync runs the client, on a clock the test steps, against
// a real hub: it probes the hub, and so hears from it, every third of the
// ContactInterval although heartbeats are rare, and a resync asked for on
// its Contact ends the session, so that the hub sends its full desired state
// again on the next.
func TestContactAndResync(t *testing.T) {
	ca, err := identity.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	fab := fabric.New(log)
	fab.MarkReady()
	srv, err := hub.New(hub.Config{CA: ca, Tokens: hubtest.Tokens{"good": "acme"}}, fab, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := hubtest.Serve(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	st, err := store.Open(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := &work{updates: make(chan struct{})}
	clk := clocktest.New(time.Now())
	contact := client.NewContact(clk)
	cl, err := client.New(client.Config{
		Hub: addr, HubCA: ca.Pool(), Token: "good", DeviceID: "pi-1",
		Hello:             func() *hubv1.Hello { return &hubv1.Hello{} },
		HeartbeatInterval: time.Minute,
		ContactInterval:   func() time.Duration { return 600 * time.Millisecond },
		Clock:             clk,
		Contact:           contact,
	}, st, w, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	if !cl.LastContact().IsZero() {
		t.Fatal("LastContact before any session: want zero")
	}
	wg.Go(func() { _ = cl.Run(ctx) })

	poll.Until(t, 20*time.Second, func() bool { return w.desired.Load() == 1 && cl.Connected() })
	if got, want := contact.Last(), clk.Now(); !got.Equal(want) {
		t.Fatalf("last contact after the welcome: got %v, want the clock's now %v", got, want)
	}
	// Heartbeats come every minute; a probe every 200 ms keeps the contact
	// fresh: its reply comes at the time it was sent, the clock standing
	// still meanwhile. The session's ticker and probe timer, the renewal's
	// ticker and nothing else are pending.
	if !clk.WaitForWaiters(t.Context(), 3) {
		t.Fatal("the session's timers are not pending")
	}
	for i := range 3 {
		clk.Step(199 * time.Millisecond)
		if clk.Since(contact.Last()) != 199*time.Millisecond {
			t.Fatalf("step %d: heard from the hub before the probe was due", i)
		}
		clk.Step(time.Millisecond)
		poll.Until(t, 20*time.Second, func() bool { return contact.Last().Equal(clk.Now()) })
	}
	contact.Resync()
	// The next session starts after a back-off of at most 500 ms.
	poll.Until(t, 20*time.Second, func() bool {
		if w.desired.Load() == 2 && cl.Connected() {
			return true
		}
		clk.Step(50 * time.Millisecond)
		return false
	})
}
