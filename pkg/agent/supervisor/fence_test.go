package supervisor

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/clock/clocktest"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/poll"
)

func TestFenceDue(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name     string
		lastAgo  time.Duration // how long ago the last contact was; <0: never
		grace    time.Duration
		wantDue  bool
		wantLeas time.Duration
	}{
		{"never in contact since start", -1, time.Minute, true, 50 * time.Second},
		{"fresh contact", 0, time.Minute, false, 50 * time.Second},
		{"margin capped at 10s: before", 49 * time.Second, time.Minute, false, 50 * time.Second},
		{"margin capped at 10s: at", 50 * time.Second, time.Minute, true, 50 * time.Second},
		{"long grace keeps the 10s margin", 9*time.Minute + 49*time.Second, 10 * time.Minute, false, 9*time.Minute + 50*time.Second},
		{"short grace: margin a quarter, before", 5900 * time.Millisecond, 8 * time.Second, false, 6 * time.Second},
		{"short grace: margin a quarter, at", 6 * time.Second, 8 * time.Second, true, 6 * time.Second},
		{"well past the grace", time.Hour, 8 * time.Second, true, 6 * time.Second},
		{"zero grace fences as soon as contact lapses", time.Millisecond, 0, true, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var last time.Time
			if c.lastAgo >= 0 {
				last = now.Add(-c.lastAgo)
			}
			if got := FenceDue(last, c.grace, now); got != c.wantDue {
				t.Errorf("FenceDue(%v ago, grace %v): got %v, want %v", c.lastAgo, c.grace, got, c.wantDue)
			}
			if got := FenceLease(c.grace); got != c.wantLeas {
				t.Errorf("FenceLease(%v): got %v, want %v", c.grace, got, c.wantLeas)
			}
		})
	}
}

// fenceFixture is a supervisor on a clock the test steps, whose last
// contact with the hub the test sets.
type fenceFixture struct {
	sup     *Supervisor
	clk     *clocktest.Fake
	contact atomic.Int64 // unix nanos; 0: never
	fenced  atomic.Int32 // calls of Config.Fenced
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (f *fenceFixture) setContact(t time.Time) { f.contact.Store(t.UnixNano()) }

// startFence starts a supervisor on st; contact says whether it has heard
// from the hub (just now) when it starts.
func startFence(t *testing.T, st *store.Store, dir string, contact bool) *fenceFixture {
	t.Helper()
	rt, err := wasm.New(t.Context(), wasm.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := &fenceFixture{clk: clocktest.New(time.Now())}
	if contact {
		f.setContact(f.clk.Now())
	}
	f.sup = New(Config{
		LogDir: filepath.Join(dir, "logs"), BackoffBase: 200 * time.Millisecond,
		LastContact: func() time.Time {
			if n := f.contact.Load(); n != 0 {
				return time.Unix(0, n)
			}
			return time.Time{}
		},
		Fenced: func() { f.fenced.Add(1) },
		Clock:  f.clk,
	}, images{module: hello(t)}, Runtimes{RuntimeWASM: WASM(rt)}, st, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Go(func() { _ = f.sup.Run(ctx) })
	t.Cleanup(func() {
		f.stop()
		rt.Close(context.Background())
	})
	poll.Until(t, 20*time.Second, func() bool { f.sup.mu.Lock(); defer f.sup.mu.Unlock(); return f.sup.ctx != nil })
	// The fence loop's ticker, started after the stored workloads resumed.
	<-f.sup.Resumed()
	if !f.clk.WaitForWaiters(t.Context(), 1) {
		t.Fatal("fence loop not started")
	}
	return f
}

// pass steps the clock d on, a fence check's interval at a time, and checks
// the fences after each step as the fence loop does, so that every check is
// done when it returns.
func (f *fenceFixture) pass(d time.Duration) {
	for ; d > 0; d -= fenceCheckEvery {
		f.clk.Step(min(d, fenceCheckEvery))
		f.sup.checkFences(f.clk.Now())
	}
}

func (f *fenceFixture) stop() {
	f.cancel()
	f.wg.Wait()
}

func fencedSpec(uid string, grace time.Duration) *hubv1.Workload {
	w := spec(uid, "Always", "INTERVAL", "50ms")
	w.FenceOnPartition = true
	w.DeviceLossGraceMillis = grace.Milliseconds()
	return w
}

func isRunning(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetRunning() != nil }

func TestFenceStopsOnlyOptedInWorkloadsUntilTheHubWantsThem(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := startFence(t, st, dir, true)
	fenced, plain := fencedSpec("fenced", 8*time.Second), spec("plain", "Always", "INTERVAL", "50ms")
	if err := f.sup.SetDesired(1, []*hubv1.Workload{fenced, plain}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "fenced", isRunning)
	waitStatus(t, f.sup, "plain", isRunning)
	if got := f.sup.FenceLease(); got != 6*time.Second {
		t.Errorf("fence lease: got %v, want 6s", got)
	}
	f.sup.TakeReport()

	// Contact lapsed for longer than grace − margin (8s − 2s).
	f.clk.Step(7 * time.Second)
	st1 := waitStatus(t, f.sup, "fenced", func(st *hubv1.WorkloadStatus) bool {
		return container(st).GetState().GetTerminated().GetReason() == reasons.Fenced
	})
	if msg := container(st1).GetState().GetTerminated().GetMessage(); !strings.Contains(msg, "no contact with the hub") {
		t.Errorf("fenced message: got %q", msg)
	}
	if fs, _ := st.Fenced(); fs["fenced"] == "" {
		t.Errorf("fenced state not persisted: %v", fs)
	}
	// The callback and the event may follow the status.
	var sawEvent bool
	poll.Until(t, 20*time.Second, func() bool {
		for _, e := range f.sup.TakeReport().GetEvents() {
			if e.GetReason() == reasons.Fenced && e.GetWorkloadUid() == "fenced" && e.GetType() == "Warning" {
				sawEvent = true
			}
		}
		return sawEvent && f.fenced.Load() > 0
	})
	// It stays stopped, the other keeps running: autonomy for those that
	// did not opt in.
	f.pass(time.Second)
	for _, s := range f.sup.Statuses() {
		switch s.GetUid() {
		case "fenced":
			if isRunning(s) {
				t.Errorf("fenced workload running again while out of contact: %v", s)
			}
		case "plain":
			if !isRunning(s) {
				t.Errorf("workload without fence-on-partition stopped: %v", s)
			}
		}
	}
	// Contact again; a delta alone does not start it, only a desired state.
	f.setContact(f.clk.Now())
	f.pass(500 * time.Millisecond)
	if s := statusOf(f.sup, "fenced"); isRunning(s) {
		t.Errorf("fenced workload restarted before a desired state: %v", s)
	}
	if err := f.sup.SetDesired(2, []*hubv1.Workload{fenced, plain}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "fenced", isRunning)
	if fs, _ := st.Fenced(); len(fs) != 0 {
		t.Errorf("fenced state not cleared: %v", fs)
	}

	// Fenced again, then the hub no longer wants it here: it is removed.
	f.clk.Step(7 * time.Second)
	waitStatus(t, f.sup, "fenced", func(st *hubv1.WorkloadStatus) bool {
		return container(st).GetState().GetTerminated().GetReason() == reasons.Fenced
	})
	f.setContact(f.clk.Now())
	f.sup.TakeReport()
	if err := f.sup.SetDesired(3, []*hubv1.Workload{plain}); err != nil {
		t.Fatal(err)
	}
	if s := statusOf(f.sup, "fenced"); s != nil {
		t.Errorf("workload the hub no longer wants still there: %v", s)
	}
	// Its last status says it ended, but no phase: the hub may give it to
	// this device again (it found no other), and the statuses of the new
	// copy must then come after it.
	var last *hubv1.WorkloadStatus
	for _, s := range f.sup.TakeReport().GetStatuses() {
		if s.GetUid() == "fenced" {
			last = s
		}
	}
	if last == nil || last.GetPhase() != "" || container(last).GetState().GetTerminated() == nil {
		t.Fatalf("last status of the removed fenced workload: got %v, want terminated containers and no phase", last)
	}
	if err := f.sup.SetDesired(4, []*hubv1.Workload{fenced, plain}); err != nil {
		t.Fatal(err)
	}
	if s := waitStatus(t, f.sup, "fenced", isRunning); s.GetSeq() <= last.GetSeq() {
		t.Errorf("status seq of the new copy %d, not after the removed one's %d", s.GetSeq(), last.GetSeq())
	}
}

func TestFencedWorkloadStaysStoppedAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := startFence(t, st, dir, true)
	w := fencedSpec("w", 8*time.Second)
	if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "w", isRunning)
	f.clk.Step(time.Minute)
	waitStatus(t, f.sup, "w", func(st *hubv1.WorkloadStatus) bool {
		return container(st).GetState().GetTerminated().GetReason() == reasons.Fenced
	})
	f.stop()

	for _, c := range []struct {
		name    string
		contact bool // the restarted agent heard from the hub (but no desired state yet)
	}{{"no contact since the restart", false}, {"contact, no desired state yet", true}} {
		t.Run(c.name, func(t *testing.T) {
			g := startFence(t, st, dir, c.contact)
			s := waitStatus(t, g.sup, "w", func(st *hubv1.WorkloadStatus) bool {
				return container(st).GetState().GetWaiting().GetReason() == reasons.Fenced
			})
			g.pass(500 * time.Millisecond)
			if s := statusOf(g.sup, "w"); isRunning(s) {
				t.Fatalf("fenced workload resurrected by a restart: %v", s)
			}
			if !strings.Contains(container(s).GetState().GetWaiting().GetMessage(), "hub") {
				t.Errorf("message: got %v", container(s).GetState())
			}
			g.stop()
		})
	}

	// A restarted agent that has not heard from the hub does not start a
	// fence-on-partition workload that was not fenced either: it cannot know
	// for how long it has been cut off. The hub's desired state starts it.
	if err := st.SetFenced("w", ""); err != nil {
		t.Fatal(err)
	}
	g := startFence(t, st, dir, false)
	waitStatus(t, g.sup, "w", func(st *hubv1.WorkloadStatus) bool {
		return container(st).GetState().GetWaiting().GetReason() == reasons.Fenced
	})
	g.setContact(g.clk.Now())
	if err := g.sup.SetDesired(2, []*hubv1.Workload{w}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, g.sup, "w", isRunning)
}

func statusOf(s *Supervisor, uid string) *hubv1.WorkloadStatus {
	for _, st := range s.Statuses() {
		if st.GetUid() == uid {
			return st
		}
	}
	return nil
}
