package wasm

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// BenchmarkStart starts instances of examples/hello (a Go-built module, 2.7
// MB) from a warm compilation cache and waits for each to print its first
// line, which it does once the Go runtime inside it has started. It reports
// the process's CPU time per start.
func BenchmarkStart(b *testing.B) {
	dir := b.TempDir()
	module := filepath.Join(dir, "hello.wasm")
	if err := os.WriteFile(module, ocitest.BuildGo(b, "examples/hello"), 0o644); err != nil {
		b.Fatal(err)
	}
	r, err := New(b.Context(), Config{CacheDir: filepath.Join(dir, "cache")}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(b.Context())
	start := func() *Instance {
		stdout := newSyncBuffer()
		inst, err := r.Start(b.Context(), Spec{ModulePath: module, Env: []string{"INTERVAL=1h"}, Stdout: stdout})
		if err != nil {
			b.Fatal(err)
		}
		stdout.waitFor(b, "args:")
		return inst
	}
	start().Stop(0) // compile
	var insts []*Instance
	cpu0, wall0 := processCPU(), time.Now()
	b.ResetTimer()
	for range b.N {
		insts = append(insts, start())
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/start")
	b.ReportMetric(float64(time.Since(wall0).Microseconds())/float64(b.N), "wall-µs/start")
	for _, inst := range insts {
		inst.Stop(0)
	}
}

// processCPU is the process's user and system CPU time.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
