package fabric_test

import (
	"log/slog"
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
