package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/logs"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
	"github.com/edgefabric/edgefabric/test/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// images serves one module for every reference, or fails a chosen reference.
type images struct {
	module string
	fail   map[string]error
}

func (i images) Pull(_ context.Context, ref string, _ image.PullPolicy) (*image.Artifact, error) {
	if err := i.fail[ref]; err != nil {
		return nil, err
	}
	return &image.Artifact{Ref: ref, ImageID: "sha256:feed", ModulePath: i.module, Entrypoint: []string{"hello"}}, nil
}

func (i images) Lookup(string) (*image.Artifact, error) { return nil, image.ErrNotPresent }

type fixture struct {
	sup    *Supervisor
	store  *store.Store
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func start(t *testing.T, imgs images) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := wasm.New(t.Context(), wasm.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st}
	f.sup = New(Config{LogDir: filepath.Join(dir, "logs"), PodIP: "10.0.0.9", BackoffBase: 200 * time.Millisecond}, imgs, Runtimes{RuntimeWASM: WASM(rt)}, st, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = f.sup.Run(ctx)
	}()
	t.Cleanup(func() {
		f.stop()
		rt.Close(context.Background())
		st.Close()
	})
	// Run records its context before it returns to the caller's next step.
	poll.Until(t, 20*time.Second, func() bool { f.sup.mu.Lock(); defer f.sup.mu.Unlock(); return f.sup.ctx != nil })
	return f
}

func (f *fixture) stop() {
	f.cancel()
	f.wg.Wait()
}

var (
	helloOnce sync.Once
	helloPath string
)

func hello(t testing.TB) string {
	t.Helper()
	helloOnce.Do(func() {
		mod := ocitest.BuildGo(t, "examples/hello")
		dir, err := os.MkdirTemp("", "hello-wasm")
		if err != nil {
			t.Fatal(err)
		}
		helloPath = filepath.Join(dir, "hello.wasm")
		if err := os.WriteFile(helloPath, mod, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	return helloPath
}

func spec(uid, policy string, env ...string) *hubv1.Workload {
	c := &hubv1.Container{Name: "app", Image: "reg/hello:1"}
	for i := 0; i+1 < len(env); i += 2 {
		c.Env = append(c.Env, &hubv1.EnvVar{Name: env[i], Value: env[i+1]})
	}
	return &hubv1.Workload{Uid: uid, Namespace: "default", Name: uid, RestartPolicy: policy, Containers: []*hubv1.Container{c}, SpecHash: uid + policy}
}

// waitStatus waits until a published status of uid satisfies cond.
func waitStatus(t *testing.T, s *Supervisor, uid string, cond func(*hubv1.WorkloadStatus) bool) *hubv1.WorkloadStatus {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		for _, st := range s.Statuses() {
			if st.GetUid() == uid && cond(st) {
				return st
			}
		}
		select {
		case <-s.Updates():
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("status of %s: condition not met; have %v", uid, s.Statuses())
		}
	}
}

func container(st *hubv1.WorkloadStatus) *hubv1.ContainerStatus { return st.GetContainers()[0] }

func TestRunsToCompletionWithNever(t *testing.T) {
	f := start(t, images{module: hello(t)})
	if err := f.sup.SetDesired(1, []*hubv1.Workload{spec("a", "Never", "COUNT", "2", "INTERVAL", "10ms", "EXIT_CODE", "3")}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.sup, "a", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetTerminated() != nil })
	term := container(st).GetState().GetTerminated()
	if term.GetExitCode() != 3 || term.GetReason() != reasons.Error || container(st).GetRestartCount() != 0 {
		t.Errorf("got %v, want exit 3 reason Error and no restart", container(st))
	}
	if container(st).GetImageId() != "sha256:feed" || st.GetPodIp() != "10.0.0.9" {
		t.Errorf("image id / pod ip: got %v", st)
	}
	var buf strings.Builder
	if err := logs.Read(t.Context(), f.sup.LogFiles("a", "app"), logs.Options{TailLines: -1}, &buf); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); !strings.Contains(got, "hello from a") {
		t.Errorf("logs: got %q, want the pod name as HOSTNAME", got)
	}
}

func TestCrashLoopBacksOffAndCountsRestarts(t *testing.T) {
	f := start(t, images{module: hello(t)})
	if err := f.sup.SetDesired(1, []*hubv1.Workload{spec("b", "Always", "COUNT", "1", "INTERVAL", "1ms", "EXIT_CODE", "1")}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.sup, "b", func(st *hubv1.WorkloadStatus) bool {
		return container(st).GetState().GetWaiting().GetReason() == reasons.CrashLoopBackOff && container(st).GetRestartCount() >= 2
	})
	if last := container(st).GetLastState().GetTerminated(); last.GetExitCode() != 1 {
		t.Errorf("last state: got %v", container(st).GetLastState())
	}
	if n, _ := f.store.Restarts("b", "app"); n < 2 {
		t.Errorf("persisted restarts: got %d", n)
	}
	r := f.sup.TakeReport()
	seen := map[string]bool{}
	for _, e := range r.GetEvents() {
		seen[e.GetReason()] = true
	}
	for _, want := range []string{reasons.Pulling, reasons.Pulled, reasons.Started, reasons.BackOff} {
		if !seen[want] {
			t.Errorf("no %s event in %v", want, r.GetEvents())
		}
	}
}

func TestPullFailureReportsErrImagePullThenBackOff(t *testing.T) {
	f := start(t, images{module: hello(t), fail: map[string]error{"reg/hello:1": errors.New("image not found")}})
	if err := f.sup.SetDesired(1, []*hubv1.Workload{spec("c", "Always")}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "c", func(st *hubv1.WorkloadStatus) bool {
		return container(st).GetState().GetWaiting().GetReason() == reasons.ErrImagePull
	})
	waitStatus(t, f.sup, "c", func(st *hubv1.WorkloadStatus) bool {
		return container(st).GetState().GetWaiting().GetReason() == reasons.ImagePullBackOff
	})
}

// TestReconcileKeepsUnchangedAndStopsRemoved is the reconnect contract: a full
// state that names a running workload with the same spec hash leaves it alone.
func TestReconcileKeepsUnchangedAndStopsRemoved(t *testing.T) {
	f := start(t, images{module: hello(t)})
	keep, drop := spec("k", "Always", "INTERVAL", "50ms"), spec("d", "Always", "INTERVAL", "50ms")
	if err := f.sup.SetDesired(1, []*hubv1.Workload{keep, drop}); err != nil {
		t.Fatal(err)
	}
	running := func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetRunning() != nil }
	before := waitStatus(t, f.sup, "k", running)
	waitStatus(t, f.sup, "d", running)

	if err := f.sup.SetDesired(2, []*hubv1.Workload{spec("k", "Always", "INTERVAL", "50ms")}); err != nil {
		t.Fatal(err)
	}
	r := f.sup.TakeReport()
	poll.Until(t, 20*time.Second, func() bool { _, ok := f.sup.Workload("d"); return !ok })
	// The removed workload's logs are removed from the device, the kept one's stay.
	poll.Until(t, 20*time.Second, func() bool { a, err := f.sup.LogFiles("d", "app").Attempts(); return err == nil && len(a) == 0 })
	if a, err := f.sup.LogFiles("k", "app").Attempts(); err != nil || len(a) != 1 {
		t.Errorf("attempts of the kept workload's logs: %v, %v", a, err)
	}
	after := waitStatus(t, f.sup, "k", running)
	if !after.GetContainers()[0].GetState().GetRunning().GetStartedAt().AsTime().Equal(before.GetContainers()[0].GetState().GetRunning().GetStartedAt().AsTime()) {
		t.Errorf("unchanged workload restarted: before %v after %v", before, after)
	}
	// The removed workload's last status says it stopped.
	deadline := time.After(20 * time.Second)
	for {
		for _, st := range r.GetStatuses() {
			if st.GetUid() == "d" && st.GetPhase() != "" {
				if t := container(st).GetState().GetTerminated(); t == nil {
					break
				}
				return
			}
		}
		select {
		case <-f.sup.Updates():
			r = f.sup.TakeReport()
		case <-deadline:
			t.Fatalf("no final status for the removed workload; last report %v", r)
		}
	}
}

// storedSupervisor returns a supervisor, not running yet, whose store holds
// generation 4 of the desired state: w, as an agent that is started again
// finds it.
func storedSupervisor(t *testing.T, w *hubv1.Workload) (*Supervisor, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SetDesired(4, []*hubv1.Workload{w}); err != nil {
		t.Fatal(err)
	}
	rt, err := wasm.New(t.Context(), wasm.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return New(Config{LogDir: filepath.Join(dir, "logs")}, images{module: hello(t)}, Runtimes{RuntimeWASM: WASM(rt)}, st, slog.New(slog.DiscardHandler)), st
}

func TestResumesFromStoreAfterRestart(t *testing.T) {
	sup, _ := storedSupervisor(t, spec("r", "Always", "INTERVAL", "50ms"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	defer func() { cancel(); <-done }()
	got := waitStatus(t, sup, "r", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetRunning() != nil })
	if sup.Generation() != 4 {
		t.Errorf("generation: got %d, want 4", sup.Generation())
	}
	if container(got).GetRestartCount() != 1 {
		t.Errorf("restart count after agent restart: got %d, want 1", container(got).GetRestartCount())
	}
}

// TestTidiesLogsAtStart starts a supervisor on logs kept the way agents
// before it kept them, a directory per pod and container: the stored
// workload's are moved to where LogFiles says and it goes on from them; the
// logs of pods no longer there, in either layout, are deleted.
func TestTidiesLogsAtStart(t *testing.T) {
	sup, _ := storedSupervisor(t, spec("r", "Always", "INTERVAL", "50ms"))
	logDir := sup.cfg.LogDir
	old := map[string]string{
		"r/app/0.log":       "2026-11-27T10:00:00Z stdout F from the old layout\n",
		"r/app/0.done":      "",
		"gone/app/0.log":    "2026-11-27T10:00:00Z stdout F of a deleted pod\n",
		"orphan_app.0.log":  "2026-11-27T10:00:00Z stdout F of another deleted pod\n",
		"orphan_app.0.done": "",
	}
	for name, content := range old {
		p := filepath.Join(logDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitStatus(t, sup, "r", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetRunning() != nil })

	var prev strings.Builder
	if err := logs.Read(t.Context(), sup.LogFiles("r", "app"), logs.Options{TailLines: -1, Previous: true}, &prev); err != nil || prev.String() != "from the old layout\n" {
		t.Errorf("previous attempt of the resumed workload: %q, %v; want its line from the old layout", prev.String(), err)
	}
	entries, err := os.ReadDir(logDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"r_app.0.done", "r_app.0.log", "r_app.1.log"}; !slices.Equal(names, want) {
		t.Errorf("log directory holds %v, want %v", names, want)
	}
}

// TestHubStateBeforeResumeWins gives the supervisor the hub's full state
// before Run has resumed the stored one: the hub's is what runs, and what is
// stored once Run ends.
func TestHubStateBeforeResumeWins(t *testing.T) {
	sup, st := storedSupervisor(t, spec("old", "Always", "INTERVAL", "50ms"))
	set := make(chan error, 1)
	go func() { set <- sup.SetDesired(7, []*hubv1.Workload{spec("new", "Always", "INTERVAL", "50ms")}) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	if err := <-set; err != nil {
		t.Fatal(err)
	}
	waitStatus(t, sup, "new", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetRunning() != nil })
	poll.Until(t, 20*time.Second, func() bool { _, ok := sup.Workload("old"); return !ok })
	cancel()
	<-done
	gen, ws, err := st.Desired()
	if err != nil || gen != 7 || len(ws) != 1 || ws[0].GetUid() != "new" {
		t.Errorf("stored after Run: generation %d, %d workloads (%v), %v; want 7 and only new", gen, len(ws), ws, err)
	}
}

// TestImagesInUse: the images the image cache's GC must keep are those of
// every desired workload's containers, init containers too, pulled or not,
// and those their containers were started from.
func TestImagesInUse(t *testing.T) {
	f := start(t, images{module: hello(t), fail: map[string]error{"reg/other:2": errors.New("image not found")}})
	select {
	case <-f.sup.Resumed():
	case <-time.After(20 * time.Second):
		t.Fatal("Resumed not closed after Run started")
	}
	a := spec("a", "Always", "COUNT", "1000", "INTERVAL", "100ms")
	a.InitContainers = []*hubv1.Container{{Name: "init", Image: "reg/init:1", Env: []*hubv1.EnvVar{{Name: "COUNT", Value: "1"}, {Name: "INTERVAL", Value: "1ms"}}}}
	b := spec("b", "Always")
	b.Containers[0].Image = "reg/other:2"
	if err := f.sup.SetDesired(1, []*hubv1.Workload{a, b}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "a", func(st *hubv1.WorkloadStatus) bool { return container(st).GetImageId() == "sha256:feed" })
	got := f.sup.ImagesInUse()
	want := image.InUse{Refs: []string{"reg/hello:1", "reg/init:1", "reg/other:2"}, ImageIDs: []string{"sha256:feed"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ImagesInUse() mismatch (-want +got):\n%s", diff)
	}
	if err := f.sup.SetDesired(2, []*hubv1.Workload{b}); err != nil {
		t.Fatal(err)
	}
	want = image.InUse{Refs: []string{"reg/other:2"}}
	if diff := cmp.Diff(want, f.sup.ImagesInUse(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ImagesInUse() after a was deleted mismatch (-want +got):\n%s", diff)
	}
}
