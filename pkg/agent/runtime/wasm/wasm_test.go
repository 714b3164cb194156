package wasm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// sharedCache is a compilation cache dir shared by the tests so that the Go
// example is compiled once.
var sharedCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasm-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedCache = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { os.RemoveAll(dir) }))
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newRuntime(t *testing.T, cacheDir string) *Runtime {
	t.Helper()
	r, err := New(t.Context(), Config{CacheDir: cacheDir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return r
}

// writeModule writes module bytes to a file and returns its path.
func writeModule(t *testing.T, module []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "module.wasm")
	if err := os.WriteFile(path, module, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	helloOnce sync.Once
	helloPath string
)

// hello returns the path of the examples/hello module, built once.
func hello(t *testing.T) string {
	t.Helper()
	module := ocitest.BuildGo(t, "examples/hello")
	helloOnce.Do(func() {
		helloPath = filepath.Join(sharedCache, "hello.wasm")
		if err := os.WriteFile(helloPath, module, 0o644); err != nil {
			panic(err)
		}
	})
	return helloPath
}

// wat compiles a .wat file from testdata, or from the repository root for
// names starting with "examples/", and returns the module's path.
func wat(t *testing.T, name string) string {
	t.Helper()
	file := filepath.Join("testdata", name)
	if strings.HasPrefix(name, "examples/") {
		file = filepath.Join(ocitest.RepoRoot(t), name)
	}
	return writeModule(t, ocitest.Wat2Wasm(t, file))
}

// syncBuffer is an io.Writer that tests can read and wait on.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) waitFor(t testing.TB, substr string) {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for !strings.Contains(s.String(), substr) {
		select {
		case <-s.changed:
		case <-timeout.C:
			t.Fatalf("waiting for %q in output %q", substr, s.String())
		}
	}
}

// wait waits for the instance to end and returns its result.
func wait(t *testing.T, inst *Instance) Result {
	t.Helper()
	select {
	case <-inst.Done():
		return inst.Result()
	case <-time.After(60 * time.Second):
		inst.Stop(0)
		t.Fatal("instance did not end")
		return Result{}
	}
}

func TestHello(t *testing.T) {
	r := newRuntime(t, sharedCache)
	module := hello(t)
	tests := []struct {
		name       string
		args       []string
		env        []string
		limit      int64
		want       Result
		wantStdout []string // substrings
		wantStderr string
	}{
		{
			name:       "args and env reach the module",
			args:       []string{"hello", "a b", "c"},
			env:        []string{"HOSTNAME=device-1", "COUNT=2", "INTERVAL=1ms"},
			want:       Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: []string{"hello from device-1\n", "args: [\"a b\" \"c\"]\n", "\n1 ", "\n2 "},
			wantStderr: "hello: starting\n",
		},
		{
			name:       "default name and no args",
			env:        []string{"COUNT=1", "INTERVAL=1ms"},
			want:       Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: []string{"hello from edgefabric\n", "args: []\n"},
			wantStderr: "hello: starting\n",
		},
		{
			name:       "exit code",
			args:       []string{"hello"},
			env:        []string{"COUNT=1", "INTERVAL=1ms", "EXIT_CODE=3"},
			want:       Result{ExitCode: 3, Reason: reasons.Error},
			wantStdout: []string{"\n1 "},
			wantStderr: "hello: starting\n",
		},
		{
			name:       "allocation within the memory limit",
			args:       []string{"hello"},
			env:        []string{"COUNT=1", "INTERVAL=1ms", "ALLOC_MB=8"},
			limit:      64 << 20,
			want:       Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: []string{"allocated 8 MiB\n"},
			wantStderr: "hello: starting\n",
		},
		{
			name:       "allocation over the memory limit",
			args:       []string{"hello"},
			env:        []string{"COUNT=1", "INTERVAL=1ms", "ALLOC_MB=64"},
			limit:      32<<20 + 1000, // rounded down to pages
			want:       Result{ExitCode: 137, Reason: reasons.OOMKilled, Message: "linear memory limit of 33554432 bytes reached"},
			wantStdout: []string{"hello from edgefabric\n"},
			wantStderr: "hello: starting\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr := newSyncBuffer(), newSyncBuffer()
			inst, err := r.Start(t.Context(), Spec{
				ModulePath:       module,
				Args:             tt.args,
				Env:              tt.env,
				MemoryLimitBytes: tt.limit,
				Stdout:           stdout,
				Stderr:           stderr,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := wait(t, inst)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s\nstdout: %s\nstderr: %s", diff, stdout, stderr)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout %q does not contain %q", stdout, want)
				}
			}
			if !strings.HasPrefix(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to start with %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestClocksAndSleepAreReal(t *testing.T) {
	r := newRuntime(t, sharedCache)
	stdout := newSyncBuffer()
	start := time.Now()
	inst, err := r.Start(t.Context(), Spec{
		ModulePath: hello(t),
		Args:       []string{"hello"},
		Env:        []string{"COUNT=3", "INTERVAL=100ms"},
		Stdout:     stdout,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := wait(t, inst); got.Reason != reasons.Completed {
		t.Fatalf("result %+v", got)
	}
	end := time.Now()
	if elapsed := end.Sub(start); elapsed < 300*time.Millisecond {
		t.Errorf("3 lines 100ms apart took %v, want at least 300ms", elapsed)
	}
	var stamps []time.Time
	for _, line := range strings.Split(stdout.String(), "\n") {
		var n int
		var ts string
		if _, err := fmt.Sscanf(line, "%d %s", &n, &ts); err != nil {
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		stamps = append(stamps, tm)
	}
	if len(stamps) != 3 {
		t.Fatalf("got %d numbered lines in %q, want 3", len(stamps), stdout)
	}
	for i, ts := range stamps {
		if ts.Before(start.Add(-time.Second)) || ts.After(end.Add(time.Second)) {
			t.Errorf("line %d has time %v, want the wall clock (between %v and %v)", i+1, ts, start, end)
		}
		if i > 0 && ts.Sub(stamps[i-1]) < 90*time.Millisecond {
			t.Errorf("lines %d and %d are %v apart, want about 100ms", i, i+1, ts.Sub(stamps[i-1]))
		}
	}
}

func TestStop(t *testing.T) {
	r := newRuntime(t, sharedCache)
	stdout := newSyncBuffer()
	inst, err := r.Start(t.Context(), Spec{
		ModulePath: hello(t),
		Env:        []string{"INTERVAL=1h"},
		Stdout:     stdout,
	})
	if err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "args:")
	start := time.Now()
	inst.Stop(10 * time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Stop took %v, want it prompt", took)
	}
	select {
	case <-inst.Done():
	default:
		t.Fatal("Done not closed after Stop returned")
	}
	want := Result{ExitCode: 137, Reason: reasons.Killed, Message: "stopped"}
	if diff := cmp.Diff(want, inst.Result()); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
	inst.Stop(0) // again: no effect
	if diff := cmp.Diff(want, inst.Result()); diff != "" {
		t.Errorf("result after second Stop mismatch (-want +got):\n%s", diff)
	}
}

// TestStopSleepingEndsAtOnce checks that a module stopped while it sleeps
// ends in the sleep instead of running on: a Go module's scheduler, woken,
// polls again at once, and without the exit there it spun until wazero's
// termination check, 4 ms of CPU for a stopped hello (starting it takes 1).
func TestStopSleepingEndsAtOnce(t *testing.T) {
	r := newRuntime(t, sharedCache)
	for range 3 {
		stdout := newSyncBuffer()
		inst, err := r.Start(t.Context(), Spec{ModulePath: hello(t), Env: []string{"INTERVAL=1h"}, Stdout: stdout})
		if err != nil {
			t.Fatal(err)
		}
		stdout.waitFor(t, "args:")
		before := inst.Usage()
		if !before.CPUMeasured {
			t.Skip("the instance's CPU time is not measured here")
		}
		inst.Stop(10 * time.Second)
		if got := inst.Result(); got.Reason != reasons.Killed || got.ExitCode != 137 {
			t.Errorf("result after Stop: %+v, want Killed (137)", got)
		}
		// Thread CPU time, not wall time: a loaded machine does not add to it.
		if ran := time.Duration(inst.Usage().CPUNanos - before.CPUNanos); ran > 1500*time.Microsecond {
			t.Errorf("the module ran %v of CPU after Stop, want it to end in its sleep", ran)
		}
	}
}

// TestPauseExample runs examples/pause, the benchmark's workload: it logs
// one line, keeps running, and a Stop ends it in its sleep.
func TestPauseExample(t *testing.T) {
	r := newRuntime(t, "")
	stdout := newSyncBuffer()
	inst, err := r.Start(t.Context(), Spec{ModulePath: wat(t, "examples/pause/pause.wat"), Stdout: stdout})
	if err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "pause\n")
	select {
	case <-inst.Done():
		t.Fatalf("pause ended by itself: %+v", inst.Result())
	case <-time.After(200 * time.Millisecond):
	}
	start := time.Now()
	inst.Stop(10 * time.Second)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Stop took %v, want the module to end in its sleep", took)
	}
	if got := inst.Result(); got.Reason != reasons.Killed || got.ExitCode != 137 {
		t.Errorf("result after Stop: %+v, want Killed (137)", got)
	}
	if got := stdout.String(); got != "pause\n" {
		t.Errorf("stdout %q, want %q", got, "pause\n")
	}
}

func TestStopBlockedInStdin(t *testing.T) {
	r := newRuntime(t, "")
	pr, pw := io.Pipe() // never written: reads block
	defer pw.Close()
	stdin := &blockingReader{PipeReader: pr, reading: make(chan struct{})}
	inst, err := r.Start(t.Context(), Spec{ModulePath: wat(t, "read.wat"), Stdin: stdin})
	if err != nil {
		t.Fatal(err)
	}
	<-stdin.reading
	start := time.Now()
	inst.Stop(50 * time.Millisecond)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Stop took %v", took)
	}
	if diff := cmp.Diff(Result{ExitCode: 137, Reason: reasons.Killed, Message: "stopped"}, inst.Result()); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
}

// blockingReader is a pipe reader that tells when it is first read.
type blockingReader struct {
	*io.PipeReader
	once    sync.Once
	reading chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.reading) })
	return b.PipeReader.Read(p)
}

func TestStopBusyLoop(t *testing.T) {
	r := newRuntime(t, "")
	inst, err := r.Start(t.Context(), Spec{ModulePath: wat(t, "read.wat")}) // empty stdin: straight to the loop
	if err != nil {
		t.Fatal(err)
	}
	inst.Stop(0)
	if got := inst.Result(); got.Reason != reasons.Killed {
		t.Errorf("result %+v, want Killed", got)
	}
}

// TestStopSpinning stops a module computing in a loop that makes no host
// call: the runtime's termination check at loop headers must end it.
func TestStopSpinning(t *testing.T) {
	r := newRuntime(t, "")
	stdout := newSyncBuffer()
	inst, err := r.Start(t.Context(), Spec{ModulePath: wat(t, "spin.wat"), Stdout: stdout})
	if err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "spinning")
	time.Sleep(100 * time.Millisecond) // well inside the loops
	inst.Stop(0)
	select {
	case <-inst.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a spinning module did not end after Stop")
	}
	if got := inst.Result(); got.Reason != reasons.Killed {
		t.Errorf("result %+v, want Killed", got)
	}
}

// TestSpinningModulesYield runs more modules computing without host calls
// than there are CPUs, and checks that the Go runtime still gets on: a
// garbage collection, which must stop the world, completes, and a timer
// fires. Compiled code cannot be preempted; the runtime must call out of
// its loops now and then.
func TestSpinningModulesYield(t *testing.T) {
	r := newRuntime(t, "")
	module := wat(t, "spin.wat")
	var insts []*Instance
	for range runtime.GOMAXPROCS(0) + 1 {
		stdout := newSyncBuffer()
		inst, err := r.Start(t.Context(), Spec{ModulePath: module, Stdout: stdout})
		if err != nil {
			t.Fatal(err)
		}
		stdout.waitFor(t, "spinning")
		insts = append(insts, inst)
	}
	defer func() {
		for _, inst := range insts {
			inst.Stop(0)
		}
	}()
	done := make(chan struct{})
	go func() {
		time.Sleep(10 * time.Millisecond)
		runtime.GC()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a timer and a garbage collection did not complete while modules spun")
	}
}

// TestLoopsCompute checks what nested loops compute with the termination
// check at their headers against the same sum computed in Go.
func TestLoopsCompute(t *testing.T) {
	var sum uint32
	for i := range uint32(1000) {
		for j := range uint32(1000) {
			sum += (i*j + i) % 251
		}
	}
	r := newRuntime(t, "")
	inst, err := r.Start(t.Context(), Spec{ModulePath: wat(t, "loops.wat")})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, inst)
	if got, want := inst.Result().ExitCode, int(sum&255); got != want {
		t.Errorf("exit code %d, want %d", got, want)
	}
}

func TestStopAfterExitKeepsResult(t *testing.T) {
	r := newRuntime(t, "")
	inst, err := r.Start(t.Context(), Spec{ModulePath: wat(t, "exit.wat")})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, inst)
	inst.Stop(time.Second)
	if diff := cmp.Diff(Result{ExitCode: 7, Reason: reasons.Error}, inst.Result()); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
}

func TestCloseStopsInstances(t *testing.T) {
	r, err := New(t.Context(), Config{CacheDir: sharedCache}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	stdout := newSyncBuffer()
	inst, err := r.Start(t.Context(), Spec{ModulePath: hello(t), Env: []string{"INTERVAL=1h"}, Stdout: stdout})
	if err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "args:")
	if err := r.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, inst); got.Reason != reasons.Killed {
		t.Errorf("result after Close = %+v, want Killed", got)
	}
	if _, err := r.Start(t.Context(), Spec{ModulePath: hello(t)}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Start after Close: got %v, want an error saying the runtime is closed", err)
	}
}

func TestModules(t *testing.T) {
	r := newRuntime(t, "")
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		file       string
		spec       Spec
		want       Result
		wantStdout string
		wantInMsg  string
	}{
		{
			name:       "tiny example",
			file:       "examples/tiny/tiny.wat",
			want:       Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: "tiny\n",
		},
		{
			name: "function table from element segments",
			file: "elements.wat",
			want: Result{ExitCode: 19, Reason: reasons.Error},
		},
		{
			name: "proc_exit status",
			file: "exit.wat",
			want: Result{ExitCode: 7, Reason: reasons.Error},
		},
		{
			name:      "trap",
			file:      "trap.wat",
			want:      Result{ExitCode: 1, Reason: reasons.Error},
			wantInMsg: "unreachable",
		},
		{
			name: "memory.grow refused at the limit",
			file: "grow.wat",
			spec: Spec{MemoryLimitBytes: 10 * pageSize},
			want: Result{ExitCode: 137, Reason: reasons.OOMKilled},
		},
		{
			name:      "initial memory over the limit",
			file:      "bigmem.wat",
			spec:      Spec{MemoryLimitBytes: 1 << 20},
			want:      Result{ExitCode: 137, Reason: reasons.OOMKilled},
			wantInMsg: "at start",
		},
		{
			name: "initial memory within the limit",
			file: "bigmem.wat",
			spec: Spec{MemoryLimitBytes: 4 << 20},
			want: Result{ExitCode: 0, Reason: reasons.Completed},
		},
		{
			name:       "preopened directory",
			file:       "cat.wat",
			spec:       Spec{Dirs: map[string]string{"/data": data}},
			want:       Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: "from the host\n",
		},
		{
			name: "no preopened directory",
			file: "cat.wat",
			want: Result{ExitCode: 10, Reason: reasons.Error},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.ModulePath = wat(t, tt.file)
			stdout := newSyncBuffer()
			spec.Stdout = stdout
			inst, err := r.Start(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			got := wait(t, inst)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Result{}, "Message")); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s", diff)
			}
			if !strings.Contains(got.Message, tt.wantInMsg) {
				t.Errorf("message %q does not contain %q", got.Message, tt.wantInMsg)
			}
			if got := stdout.String(); got != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", got, tt.wantStdout)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	r := newRuntime(t, "")
	tiny := wat(t, "examples/tiny/tiny.wat")
	tests := []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{"missing file", Spec{ModulePath: filepath.Join(t.TempDir(), "nope.wasm")}, "no such file"},
		{"not wasm", Spec{ModulePath: writeModule(t, []byte("#!/bin/sh\necho hi\n"))}, "compile"},
		{"not a command", Spec{ModulePath: wat(t, "reactor.wat")}, "_start"},
		{"bad env", Spec{ModulePath: tiny, Env: []string{"NOEQUALS"}}, "KEY=VALUE"},
		{"missing dir", Spec{ModulePath: tiny, Dirs: map[string]string{"/data": filepath.Join(t.TempDir(), "nope")}}, "mount /data"},
		{"negative limit", Spec{ModulePath: tiny, MemoryLimitBytes: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := r.Start(t.Context(), tt.spec)
			if err == nil {
				inst.Stop(0)
				t.Fatalf("Start succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.spec.ModulePath) {
				t.Errorf("Start error %q, want it to name the module and contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestCompiledOncePerDigest(t *testing.T) {
	r := newRuntime(t, "")
	module := ocitest.Wat2Wasm(t, filepath.Join(ocitest.RepoRoot(t), "examples/tiny/tiny.wat"))
	// Two files with the same bytes, started concurrently and in sequence.
	paths := []string{writeModule(t, module), writeModule(t, module)}
	var wg sync.WaitGroup
	for range 3 {
		for _, p := range paths {
			wg.Go(func() {
				inst, err := r.Start(t.Context(), Spec{ModulePath: p})
				if err != nil {
					t.Error(err)
					return
				}
				if got := wait(t, inst); got.Reason != reasons.Completed {
					t.Errorf("result %+v", got)
				}
			})
		}
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.compiled) != 1 {
		t.Errorf("%d compiled modules, want 1", len(r.compiled))
	}
}

// cacheFiles lists the files under dir with their size and modification time.
func cacheFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files[path] = fmt.Sprintf("%d %v", info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestCompilationCacheDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	path := wat(t, "examples/tiny/tiny.wat")
	run := func() {
		t.Helper()
		r, err := New(t.Context(), Config{CacheDir: dir}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(context.Background())
		stdout := newSyncBuffer()
		inst, err := r.Start(t.Context(), Spec{ModulePath: path, Stdout: stdout})
		if err != nil {
			t.Fatal(err)
		}
		if got := wait(t, inst); got.Reason != reasons.Completed || stdout.String() != "tiny\n" {
			t.Fatalf("result %+v, stdout %q", got, stdout)
		}
	}
	run()
	first := cacheFiles(t, dir)
	if len(first) == 0 {
		t.Fatal("compilation cache dir is empty after compiling")
	}
	run()
	// A second Runtime found the compiled module: nothing was (re)written.
	if diff := cmp.Diff(first, cacheFiles(t, dir)); diff != "" {
		t.Errorf("cache dir changed on the second Runtime (-first +second):\n%s", diff)
	}
}
