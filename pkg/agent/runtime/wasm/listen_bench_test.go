package wasm

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// BenchmarkListeners loads examples/httpserver, served from a preopened
// socket, with GET /work?n=1024 on 8 kept-alive connections from this
// process, and reports requests/s and the module's CPU time per request.
func BenchmarkListeners(b *testing.B) {
	dir := b.TempDir()
	r, err := New(b.Context(), Config{CacheDir: filepath.Join(dir, "cache")}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close(b.Context()) })
	module := filepath.Join(dir, "httpserver.wasm")
	if err := os.WriteFile(module, ocitest.BuildGo(b, "examples/httpserver"), 0o644); err != nil {
		b.Fatal(err)
	}
	addr := freeAddr(b)
	out := newSyncBuffer()
	inst, err := r.Start(b.Context(), Spec{ModulePath: module, Listeners: []string{addr}, Stdout: out, Stderr: out})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Stop(0)
	const conns = 8
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	get := func() {
		resp, err := c.Get("http://" + addr + "/work?n=1024")
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := c.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("server does not answer: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	cpu, waits, t0 := inst.Usage().CPUNanos, inst.pollWaits.Load(), time.Now()
	var wg sync.WaitGroup
	per := b.N/conns + 1
	for range conns {
		wg.Go(func() {
			for range per {
				get()
			}
		})
	}
	wg.Wait()
	n := float64(per * conns)
	b.ReportMetric(n/time.Since(t0).Seconds(), "req/s")
	b.ReportMetric(float64(inst.Usage().CPUNanos-cpu)/n/1e3, "module-cpu-µs/req")
	b.ReportMetric(float64(inst.pollWaits.Load()-waits)/n, "polls/req")
}
