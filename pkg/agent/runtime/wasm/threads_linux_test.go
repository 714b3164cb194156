package wasm

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSleepingInstancesHoldNoThread starts 30 instances of examples/pause,
// which sleep once they have written their line: they must not keep an OS
// thread each (they did, one made for each start, before offThread), and the
// CPU time of an instance goes on counting across its sleeps.
func TestSleepingInstancesHoldNoThread(t *testing.T) {
	r := newRuntime(t, "")
	module := wat(t, "examples/pause/pause.wat")
	before := threads(t)
	var insts []*Instance
	defer func() {
		for _, inst := range insts {
			inst.Stop(0)
		}
	}()
	for range 30 {
		stdout := newSyncBuffer()
		inst, err := r.Start(t.Context(), Spec{ModulePath: module, Stdout: stdout})
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, inst)
		stdout.waitFor(t, "pause\n")
	}
	time.Sleep(100 * time.Millisecond) // all of them into their sleep
	if after := threads(t); after-before >= 10 {
		t.Errorf("30 sleeping instances: the process went from %d to %d threads, want them to hold none", before, after)
	}
	u := insts[0].Usage()
	if u.CPUMeasured && u.CPUNanos == 0 {
		t.Errorf("a sleeping instance's CPU time: %+v, want what it used before its sleep", u)
	}
}

// threads is the number of threads of the process.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}
