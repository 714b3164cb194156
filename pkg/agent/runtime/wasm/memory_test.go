package wasm

import (
	"context"
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

func TestLinearMemory(t *testing.T) {
	for _, limit := range []uint64{0, 4 * pageSize} {
		m := &limitedMemory{limit: limit}
		lm := m.allocate(pageSize, 1<<32).(*linearMemory)
		wantReserved := (runtime.GOOS == "linux" || runtime.GOOS == "darwin" || runtime.GOOS == "android") && strconv.IntSize == 64
		if (lm.reserved != nil) != wantReserved {
			t.Errorf("limit %d: reserved outside the Go heap: %v, want %v", limit, lm.reserved != nil, wantReserved)
		}
		buf := lm.Reallocate(pageSize)
		if len(buf) != pageSize {
			t.Fatalf("limit %d: first Reallocate: len %d, want %d", limit, len(buf), pageSize)
		}
		buf[0], buf[pageSize-1] = 1, 2
		grown := lm.Reallocate(3 * pageSize)
		if len(grown) != 3*pageSize || grown[0] != 1 || grown[pageSize-1] != 2 || grown[2*pageSize] != 0 {
			t.Fatalf("limit %d: grown memory lost its contents or has the wrong size %d", limit, len(grown))
		}
		grown[3*pageSize-1] = 3 // writable to the end
		if lm.reserved != nil && unsafe.SliceData(grown) != unsafe.SliceData(buf) {
			t.Errorf("limit %d: reserved memory moved when it grew", limit)
		}
		if limit > 0 {
			if lm.Reallocate(limit+pageSize) != nil || !m.hit.Load() {
				t.Errorf("limit %d: growing past the limit was not refused and noted", limit)
			}
		} else if m.hit.Load() {
			t.Error("no limit, but a limit was hit")
		}
		lm.Free()
	}
}

// TestLinearMemoryStartOver: a module whose initial memory is over the limit
// gets it (wazero cannot be refused) and is marked not to run.
func TestLinearMemoryStartOver(t *testing.T) {
	m := &limitedMemory{limit: pageSize}
	lm := m.allocate(2*pageSize, 1<<32)
	if buf := lm.Reallocate(2 * pageSize); len(buf) != 2*pageSize {
		t.Fatalf("initial memory: len %d, want %d", len(buf), 2*pageSize)
	}
	if !m.startOver || m.startSize != 2*pageSize {
		t.Errorf("startOver %v, startSize %d; want true, %d", m.startOver, m.startSize, 2*pageSize)
	}
	lm.Free()
}

// TestDefaultMemoryLimit: a module whose container sets no memory limit is
// held to the Runtime's default (the agent's share of the device's memory):
// one that grows its memory without end is OOMKilled, never the agent; a
// limit the container sets wins over the default, in both directions.
func TestDefaultMemoryLimit(t *testing.T) {
	grow, bigmem := wat(t, "grow.wat"), wat(t, "bigmem.wat") // skip without wat2wasm
	r, err := New(t.Context(), Config{DefaultMemoryLimitBytes: 1 << 20}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	for _, tt := range []struct {
		name string
		spec Spec
		want Result
	}{
		{"memory bomb, no limit of its own", Spec{ModulePath: grow}, Result{ExitCode: 137, Reason: reasons.OOMKilled}},
		{"over the default at start", Spec{ModulePath: bigmem}, Result{ExitCode: 137, Reason: reasons.OOMKilled}},
		{"its own limit above the default", Spec{ModulePath: bigmem, MemoryLimitBytes: 4 << 20}, Result{ExitCode: 0, Reason: reasons.Completed}},
		{"its own limit below the default", Spec{ModulePath: grow, MemoryLimitBytes: 10 * pageSize}, Result{ExitCode: 137, Reason: reasons.OOMKilled}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := r.Start(t.Context(), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := wait(t, inst)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Result{}, "Message")); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if peak := inst.Usage().MemoryBytes; tt.spec.MemoryLimitBytes == 0 && peak > 1<<20 {
				t.Errorf("memory: got %d bytes, want at most the default 1 MiB", peak)
			}
		})
	}
	if _, err := New(t.Context(), Config{DefaultMemoryLimitBytes: -1}, testLogger(t)); err == nil {
		t.Error("a negative default limit was accepted")
	}
}
