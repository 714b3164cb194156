package client_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/client"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/hub"
	"github.com/edgefabric/edgefabric/pkg/provider/hub/hubtest"
	"github.com/edgefabric/edgefabric/test/poll"
)

// recording keeps the workloads the client hands it; Apply and SetDesired
// panic on a workload named "panic", as a bug some input reaches would.
type recording struct {
	mu        sync.Mutex
	desired   int
	workloads map[string]*hubv1.Workload
	updates   chan struct{}
}

func (w *recording) SetDesired(_ uint64, ws []*hubv1.Workload) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.desired++
	w.workloads = map[string]*hubv1.Workload{}
	for _, x := range ws {
		if x.GetName() == "panic" {
			panic("a bug in SetDesired")
		}
		w.workloads[x.GetUid()] = x
	}
	return nil
}

func (w *recording) Apply(d *hubv1.WorkloadDelta) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if d.GetUpsert().GetName() == "panic" {
		var m map[string]int
		m["x"]++ //nolint:staticcheck // a nil map: the panic is the point
	}
	if u := d.GetUpsert(); u != nil {
		w.workloads[u.GetUid()] = u
	}
	return nil
}

func (w *recording) get(uid string) (*hubv1.Workload, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.workloads[uid], w.desired
}

func (w *recording) Generation() uint64                { return 0 }
func (w *recording) Statuses() []*hubv1.WorkloadStatus { return nil }
func (w *recording) Updates() <-chan struct{}          { return w.updates }
func (w *recording) TakeReport() *hubv1.StatusReport   { return nil }

// withSecret is a workload with a secret volume of size bytes.
func withSecret(uid, name string, size int) *hubv1.Workload {
	return &hubv1.Workload{Uid: uid, Name: name, Namespace: "default", Runtime: "wasm",
		Containers: []*hubv1.Container{{Name: "app", Image: "example/app"}},
		Volumes: []*hubv1.Volume{{Name: "secret", Kind: "secret", Sensitive: true, Files: []*hubv1.VolumeFile{
			{Path: "blob", Data: bytes.Repeat([]byte{'s'}, size), Mode: 0o400},
		}}}}
}

// hubAndClient runs a hub over fab and a client of device pi-1 of account
// acme with work and streams, until the test ends.
func hubAndClient(t *testing.T, fab *fabric.Fabric, work client.Workloads, streams client.StreamHandler) *client.Client {
	t.Helper()
	ca, err := identity.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	srv, err := hub.New(hub.Config{CA: ca, Tokens: hubtest.Tokens{"good": "acme"}}, fab, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := hubtest.Serve(t, srv)
	st, err := store.Open(filepath.Join(t.TempDir(), "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Config{
		Hub: addr, HubCA: ca.Pool(), Token: "good", DeviceID: "pi-1",
		Hello: func() *hubv1.Hello { return &hubv1.Hello{} }, HeartbeatInterval: time.Minute,
	}, st, work, streams, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = cl.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		st.Close()
	})
	return cl
}

// TestDesiredStateLargerThanFourMiB sends a device a desired state, then a
// change, each with a 5 MiB secret: gRPC's default limit of 4 MiB a message
// refused them, and the device reconnected for ever, each time sent the same
// state it could not receive.
func TestDesiredStateLargerThanFourMiB(t *testing.T) {
	fab := fabric.New(slog.New(slog.DiscardHandler))
	fab.Assign("acme", "pi-1", withSecret("uid-1", "big", 5<<20))
	fab.MarkReady()
	w := &recording{updates: make(chan struct{})}
	cl := hubAndClient(t, fab, w, nil)
	poll.Until(t, 20*time.Second, func() bool { x, _ := w.get("uid-1"); return x != nil })
	fab.Assign("acme", "pi-1", withSecret("uid-2", "bigger", 6<<20))
	poll.Until(t, 20*time.Second, func() bool { x, _ := w.get("uid-2"); return x != nil })
	if x, desired := w.get("uid-2"); len(x.GetVolumes()[0].GetFiles()[0].GetData()) != 6<<20 || desired != 1 || !cl.Connected() {
		t.Errorf("got %d bytes after %d desired states (connected %v); want 6 MiB in the first session",
			len(x.GetVolumes()[0].GetFiles()[0].GetData()), desired, cl.Connected())
	}
}

// TestDesiredStateLargerThanOneMessage gives a device more than one
// message can hold (three workloads of 30 MiB, with a message at most
// 64 MiB): the hub sends the state in parts and the device gets all of it
// in its first session.
func TestDesiredStateLargerThanOneMessage(t *testing.T) {
	fab := fabric.New(slog.New(slog.DiscardHandler))
	for _, uid := range []string{"uid-1", "uid-2", "uid-3"} {
		fab.Assign("acme", "pi-1", withSecret(uid, "big", 30<<20))
	}
	fab.MarkReady()
	w := &recording{updates: make(chan struct{})}
	cl := hubAndClient(t, fab, w, nil)
	poll.Until(t, 30*time.Second, func() bool { x, _ := w.get("uid-3"); return x != nil })
	for _, uid := range []string{"uid-1", "uid-2", "uid-3"} {
		x, desired := w.get(uid)
		if got := len(x.GetVolumes()[0].GetFiles()[0].GetData()); got != 30<<20 || desired != 1 || !cl.Connected() {
			t.Errorf("%s: got %d bytes after %d desired states (connected %v); want 30 MiB from one state in the first session", uid, got, desired, cl.Connected())
		}
	}
}

// TestHandlersRecoverFromPanics makes every handler of what the hub sends
// panic: the client logs it, answers the stream with an error, and keeps its
// session (and its process).
func TestHandlersRecoverFromPanics(t *testing.T) {
	fab := fabric.New(slog.New(slog.DiscardHandler))
	fab.Assign("acme", "pi-1", withSecret("uid-1", "panic", 1))
	fab.Assign("acme", "pi-1", withSecret("uid-2", "fine", 1))
	fab.MarkReady()
	w := &recording{updates: make(chan struct{})}
	streams := func(context.Context, *hubv1.StreamRequest, func(*hubv1.StreamFrame) error, func() (*hubv1.StreamFrame, error)) error {
		var p *hubv1.StreamRequest
		_ = p.Id // a nil pointer: panics
		return nil
	}
	cl := hubAndClient(t, fab, w, streams)
	poll.Until(t, 20*time.Second, cl.Connected)

	s, err := fab.OpenStream(t.Context(), "uid-2", &hubv1.StreamRequest{Kind: &hubv1.StreamRequest_Logs{Logs: &hubv1.LogOptions{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := io.ReadAll(s); err == nil || !strings.Contains(err.Error(), "internal error") {
		t.Errorf("stream whose handler panicked: got %v, want an internal error", err)
	}

	fab.Assign("acme", "pi-1", withSecret("uid-3", "panic", 1))
	fab.Assign("acme", "pi-1", withSecret("uid-4", "after", 1))
	poll.Until(t, 20*time.Second, func() bool { x, _ := w.get("uid-4"); return x != nil })
	if _, desired := w.get("uid-4"); desired != 1 || !cl.Connected() {
		t.Errorf("after panics: %d desired states, connected %v; want the first session still up", desired, cl.Connected())
	}
}
