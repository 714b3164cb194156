package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// BenchmarkWorkloadStart applies b.N workloads of examples/hello, one delta
// each as the hub sends them, to a supervisor with the module compiled, and
// waits until every one reports Running. It reports the process's CPU time
// per workload: what the agent spends on a pod start, the module's own start
// (wasm.BenchmarkStart) included.
func BenchmarkWorkloadStart(b *testing.B) {
	dir := b.TempDir()
	st, err := store.Open(filepath.Join(dir, "agent.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	rt, err := wasm.New(b.Context(), wasm.Config{CacheDir: filepath.Join(dir, "cache")}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(context.Background())
	sup := New(Config{LogDir: filepath.Join(dir, "logs"), PodIP: "10.0.0.9"}, images{module: hello(b)}, Runtimes{RuntimeWASM: WASM(rt)}, st, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sup.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	gen := uint64(0)
	apply := func(uid string) {
		gen++
		if err := sup.Apply(&hubv1.WorkloadDelta{Generation: gen, Upsert: spec(uid, "Always", "INTERVAL", "1h")}); err != nil {
			b.Fatal(err)
		}
	}
	running := func(n int) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			count := 0
			for _, s := range sup.Statuses() {
				if c := s.GetContainers(); len(c) > 0 && c[0].GetState().GetRunning() != nil {
					count++
				}
			}
			if count >= n {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d workloads running", count, n)
			}
			// Not on every update: Statuses copies every workload's status,
			// and the benchmark must not measure its own polling.
			time.Sleep(50 * time.Millisecond)
		}
	}
	apply("warm") // compile
	running(1)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		apply(fmt.Sprintf("w%d", i))
	}
	running(b.N + 1)
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/workload")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
