package fabric_test

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
)

// recorder is a Listener that remembers the statuses it heard.
type recorder struct {
	mu       sync.Mutex
	statuses []*hubv1.WorkloadStatus
}

func (r *recorder) DevicesChanged(string)              {}
func (r *recorder) WorkloadEvent(string, *hubv1.Event) {}
func (r *recorder) WorkloadStatus(_ string, st *hubv1.WorkloadStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, st)
}

func (r *recorder) restartCounts() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int32
	for _, st := range r.statuses {
		out = append(out, st.GetContainers()[0].GetRestartCount())
	}
	return out
}

func status(uid string, restarts int32) *hubv1.WorkloadStatus {
	return &hubv1.WorkloadStatus{Uid: uid, Containers: []*hubv1.ContainerStatus{{Name: "app", RestartCount: restarts}}}
}

// TestStatusBeforeReady is a provider that restarts: a device connects while
// the provider still rebuilds its workloads from Kubernetes. What the device
// says in its hello, and reports after, must reach the listener once the
// fabric knows the device owns those workloads.
func TestStatusBeforeReady(t *testing.T) {
	f := fabric.New(slog.New(slog.DiscardHandler))
	rec := &recorder{}
	f.SetListener(rec)
	dev := identity.Device{ID: "pi", Account: "acme"}

	f.Connect(dev, &hubv1.Hello{Statuses: []*hubv1.WorkloadStatus{status("w1", 1), status("stale", 0)}})
	f.Report(dev, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{status("w1", 2)}})
	if got := rec.restartCounts(); len(got) != 0 {
		t.Fatalf("statuses of workloads not yet known reached the listener: %v", got)
	}
	f.Assign("acme", "pi", &hubv1.Workload{Uid: "w1", SpecHash: "h"})
	f.MarkReady()
	got := rec.restartCounts()
	if len(got) != 1 || got[0] != 2 {
		t.Errorf("after MarkReady the listener heard restart counts %v, want only the newest of w1: [2]", got)
	}
	// Once ready, reports pass straight through and nothing is replayed.
	f.Report(dev, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{status("w1", 3)}})
	f.MarkReady()
	if got := rec.restartCounts(); len(got) != 2 || got[1] != 3 {
		t.Errorf("listener heard %v, want [2 3]", got)
	}
}

// TestDrop removes devices from the fabric: a connected one decommissioned
// (its session ends saying so), an offline one forgotten. Neither counts any
// more, their workloads are theirs no more (Remove finds nothing and does not
// crash), reports from them are dropped, and a device that connects again is
// a new one with nothing to run.
func TestDrop(t *testing.T) {
	ctx := t.Context()
	f := fabric.New(slog.New(slog.DiscardHandler))
	rec := &recorder{}
	f.SetListener(rec)
	f.MarkReady()
	pi, gw := identity.Device{ID: "pi", Account: "acme"}, identity.Device{ID: "gw", Account: "acme"}
	sess := f.Connect(pi, &hubv1.Hello{Capacity: &hubv1.Resources{CpuMillis: 1000, Pods: 10}})
	gwSess := f.Connect(gw, &hubv1.Hello{Capacity: &hubv1.Resources{CpuMillis: 1000, Pods: 10}})
	f.Disconnect(gwSess)
	f.Assign("acme", "pi", &hubv1.Workload{Uid: "w1", SpecHash: "h"})
	f.Assign("acme", "pi", &hubv1.Workload{Uid: "w2", SpecHash: "h"})
	f.Assign("acme", "gw", &hubv1.Workload{Uid: "w3", SpecHash: "h"})

	tests := []struct {
		name           string
		dev            identity.Device
		decommissioned bool
		sess           *fabric.Session
		wantUIDs       []string
		wantErr        error
	}{
		{name: "connected, decommissioned", dev: pi, decommissioned: true, sess: sess, wantUIDs: []string{"w1", "w2"}, wantErr: fabric.ErrDecommissioned},
		{name: "offline, forgotten", dev: gw, wantUIDs: []string{"w3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uids, known := f.Drop(tc.dev, tc.decommissioned)
			if !known || !slices.Equal(uids, tc.wantUIDs) {
				t.Errorf("Drop: got %v, %v; want %v, true", uids, known, tc.wantUIDs)
			}
			if tc.sess != nil {
				for {
					if _, err := tc.sess.Next(ctx); err != nil {
						if !errors.Is(err, tc.wantErr) {
							t.Errorf("session ended with %v, want %v", err, tc.wantErr)
						}
						break
					}
				}
			}
			if _, ok := f.Device("acme", tc.dev.ID); ok {
				t.Errorf("%s still in the fabric", tc.dev.ID)
			}
			for _, uid := range tc.wantUIDs {
				if d, _ := f.Remove(uid); d != "" {
					t.Errorf("Remove(%s) found it on %s", uid, d)
				}
			}
			if _, known := f.Drop(tc.dev, tc.decommissioned); known {
				t.Error("dropped twice")
			}
		})
	}
	f.Report(pi, &hubv1.StatusReport{Statuses: []*hubv1.WorkloadStatus{status("w1", 5)}})
	if got := rec.restartCounts(); len(got) != 0 {
		t.Errorf("statuses from a dropped device reached the listener: %v", got)
	}
	if dev, why := f.Place("acme", &hubv1.Workload{Uid: "w4"}); dev != "" {
		t.Errorf("placed on dropped device %s (%s)", dev, why)
	}
	again := f.Connect(pi, &hubv1.Hello{})
	msgs, err := again.Next(ctx)
	if err != nil || len(msgs) != 1 || len(msgs[0].GetDesired().GetWorkloads()) != 0 {
		t.Errorf("a device back after Drop: got %v, %v; want an empty desired state", msgs, err)
	}
}

// TestPlaceHoldsRoom places workloads one after another, as nodes sharing a
// device do at the same time, on a device with room for two: the room
// chosen for a workload is held until it is assigned or given up, so the
// third finds none.
func TestPlaceHoldsRoom(t *testing.T) {
	f := fabric.New(slog.New(slog.DiscardHandler))
	f.SetListener(&recorder{})
	f.MarkReady()
	f.Connect(identity.Device{ID: "pi", Account: "acme"}, &hubv1.Hello{Capacity: &hubv1.Resources{CpuMillis: 1000, MemoryBytes: 1 << 30, Pods: 2}})
	place := func(uid string) string {
		dev, _ := f.PlaceWith("acme", &hubv1.Workload{Uid: uid, SpecHash: "h"}, fabric.PlaceOptions{})
		return dev
	}
	allocated := func() int64 {
		d, _ := f.Device("acme", "pi")
		return d.Allocated.Pods
	}
	if got := place("w1"); got != "pi" {
		t.Fatalf("w1 placed on %q, want pi", got)
	}
	if got := place("w1"); got != "pi" || allocated() != 1 {
		t.Fatalf("w1 placed again: on %q with %d pods allocated, want pi and 1 (a new try replaces the hold)", got, allocated())
	}
	if got := place("w2"); got != "pi" {
		t.Fatalf("w2 placed on %q, want pi", got)
	}
	if got := place("w3"); got != "" {
		t.Fatalf("w3 placed on %q while w1 and w2 hold the device's two pod slots", got)
	}
	f.Assign("acme", "pi", &hubv1.Workload{Uid: "w1", SpecHash: "h"})
	if got := allocated(); got != 2 {
		t.Errorf("after w1's assignment: %d pods allocated, want 2 (w1 assigned, w2 held)", got)
	}
	f.Remove("w2")
	if got := allocated(); got != 1 {
		t.Errorf("after w2 was given up: %d pods allocated, want 1", got)
	}
	if got := place("w3"); got != "pi" {
		t.Errorf("w3 placed on %q once w2's hold was given up, want pi", got)
	}
}

// orderListener remembers the order of the statuses and events it heard.
type orderListener struct {
	mu    sync.Mutex
	heard []string
}

func (o *orderListener) DevicesChanged(string) {}
func (o *orderListener) WorkloadEvent(uid string, ev *hubv1.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.heard = append(o.heard, "event "+ev.GetReason())
}
func (o *orderListener) WorkloadStatus(uid string, st *hubv1.WorkloadStatus) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.heard = append(o.heard, "status "+st.GetPhase())
}

// TestEventsBeforeStatuses: a report that carries a workload's last status
// and the event that led to it (Killing, then the stopped container) passes
// the event on first: the status ends a deleted pod, and the event must
// still find it.
func TestEventsBeforeStatuses(t *testing.T) {
	f := fabric.New(slog.New(slog.DiscardHandler))
	o := &orderListener{}
	f.SetListener(o)
	dev := identity.Device{ID: "pi", Account: "acme"}
	f.Connect(dev, &hubv1.Hello{})
	f.Assign("acme", "pi", &hubv1.Workload{Uid: "w1", SpecHash: "h"})
	f.MarkReady()
	f.Report(dev, &hubv1.StatusReport{
		Statuses: []*hubv1.WorkloadStatus{{Uid: "w1", Phase: "Succeeded"}},
		Events:   []*hubv1.Event{{WorkloadUid: "w1", Reason: "Killing"}},
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	if want := []string{"event Killing", "status Succeeded"}; !slices.Equal(o.heard, want) {
		t.Errorf("listener heard %q, want %q", o.heard, want)
	}
}
