package wasm

import (
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// TestCPULimit runs a module that computes without end, with and without a
// CPU limit of 200m, for a second each, and compares the CPU time its thread
// used with what the limit allows.
func TestCPULimit(t *testing.T) {
	r := newRuntime(t, "")
	module := wat(t, "spin.wat")
	run := func(limit int64) time.Duration {
		stdout := newSyncBuffer()
		inst, err := r.Start(t.Context(), Spec{ModulePath: module, Stdout: stdout, CPULimitMillis: limit})
		if err != nil {
			t.Fatal(err)
		}
		stdout.waitFor(t, "spinning")
		if !inst.Usage().CPUMeasured {
			inst.Stop(0)
			t.Skip("thread CPU time cannot be measured here")
		}
		start := inst.Usage().CPUNanos
		time.Sleep(time.Second)
		used := time.Duration(inst.Usage().CPUNanos - start)
		inst.Stop(0)
		if got := inst.Result().Reason; got != reasons.Killed {
			t.Errorf("limit %dm: result %v, want Killed by Stop", limit, got)
		}
		return used
	}
	unlimited := run(0)
	if unlimited < 400*time.Millisecond {
		t.Skipf("a spinning module got only %v of CPU in 1s without a limit: the machine is too busy to tell a 200m limit", unlimited)
	}
	limited := run(200)
	// 200m allows 0.2 s in a second; allow for the period in progress and
	// a loaded machine giving the module less.
	if limited > 350*time.Millisecond || limited < 20*time.Millisecond {
		t.Errorf("with a 200m limit the module used %v of CPU in 1s, want about 200ms (%v without a limit)", limited, unlimited)
	}
	t.Logf("CPU used in 1s: %v with 200m, %v without a limit", limited, unlimited)
}

func TestCPULimitRefused(t *testing.T) {
	r := newRuntime(t, "")
	if _, err := r.Start(t.Context(), Spec{ModulePath: wat(t, "spin.wat"), CPULimitMillis: -1}); err == nil {
		t.Error("a negative CPU limit was accepted")
	}
}
