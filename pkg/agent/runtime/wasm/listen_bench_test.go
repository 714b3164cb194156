package wasm

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// BenchmarkListeners loads a server with GET /work?n=1024 (the SHA-256 of
// 1 KiB of zeros) on 8 kept-alive connections from this process, and
// reports requests/s and the server's CPU time per request:
//
//   - go: examples/httpserver built with GOOS=wasip1, served by the runtime
//     from a preopened socket (module-cpu-µs/req: its thread's CPU time);
//   - c: examples/cserver built for WASI with clang and wasi-libc, the same;
//   - native-go, native-c: the same two programs built for this machine and
//     run as processes (cpu-µs/req: the process's user + system time, in
//     clock ticks, so only meaningful over thousands of requests).
func BenchmarkListeners(b *testing.B) {
	dir := b.TempDir()
	r, err := New(b.Context(), Config{CacheDir: filepath.Join(dir, "cache")}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close(b.Context()) })
	b.Run("go", func(b *testing.B) { benchModule(b, r, ocitest.BuildGo(b, "examples/httpserver")) })
	b.Run("c", func(b *testing.B) { benchModule(b, r, ocitest.BuildC(b, "examples/cserver")) })
	b.Run("native-go", func(b *testing.B) { benchProcess(b, ocitest.BuildGoNative(b, "examples/httpserver")) })
	b.Run("native-c", func(b *testing.B) { benchProcess(b, ocitest.BuildCNative(b, "examples/cserver")) })
}

func benchModule(b *testing.B, r *Runtime, wasm []byte) {
	module := filepath.Join(b.TempDir(), "server.wasm")
	if err := os.WriteFile(module, wasm, 0o644); err != nil {
		b.Fatal(err)
	}
	addr := freeAddr(b)
	out := newSyncBuffer()
	inst, err := r.Start(b.Context(), Spec{ModulePath: module, Listeners: []string{addr}, Stdout: out, Stderr: out})
	if err != nil {
		b.Fatal(err)
	}
	defer inst.Stop(0)
	var cpu uint64
	var waits int64
	n := loadWork(b, addr, func() {
		cpu, waits = inst.Usage().CPUNanos, inst.pollWaits.Load()
	})
	b.ReportMetric(float64(inst.Usage().CPUNanos-cpu)/n/1e3, "module-cpu-µs/req")
	b.ReportMetric(float64(inst.pollWaits.Load()-waits)/n, "polls/req")
	if s := out.String(); strings.Contains(s, "panic") {
		b.Errorf("server output: %s", s)
	}
}

func benchProcess(b *testing.B, executable []byte) {
	bin := filepath.Join(b.TempDir(), "server")
	if err := os.WriteFile(bin, executable, 0o755); err != nil {
		b.Fatal(err)
	}
	addr := freeAddr(b)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PORT=" + port}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var cpu time.Duration
	var cpuOK bool
	n := loadWork(b, addr, func() { cpu, cpuOK = childCPU(cmd.Process.Pid) })
	if after, ok := childCPU(cmd.Process.Pid); ok && cpuOK {
		b.ReportMetric(float64(after-cpu)/n/1e3, "cpu-µs/req")
	}
}

// childCPU is the user + system CPU time of process pid, from
// /proc/<pid>/stat (Linux), in clock ticks of 10 ms.
func childCPU(pid int) (time.Duration, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// loadWork waits for the server at addr to answer, calls start, sends b.N
// (rounded up to a multiple of 8) GET /work?n=1024 on 8 kept-alive
// connections, reports req/s and returns the number of requests.
func loadWork(b *testing.B, addr string, start func()) float64 {
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
		if resp.StatusCode != http.StatusOK {
			b.Errorf("GET /work: %s", resp.Status)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := c.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("server on %s does not answer", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	start()
	t0 := time.Now()
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
	return n
}
