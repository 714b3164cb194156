package function

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
)

// The benchmarks print what issue 14 asks of functions, beside a native Go
// net/http handler doing the same work in the same run:
//
//	go test -run XXX -bench . -benchtime 2000x ./pkg/agent/function/
//
// BenchmarkColdStart: request to first byte, p50 and p99, of an instance
// started per request from a module compiled before.
// BenchmarkThroughput: requests per second at 8 concurrent keep-alive
// clients over loopback HTTP, and their ratio to the native handler's.
// BenchmarkIdleMemory: memory per deployed, idle function.

// benchModules are the functions benchmarked, with the native handler that
// does the same work.
var benchModules = []struct {
	name   string
	module func(testing.TB) []byte
	native http.HandlerFunc
}{
	{"wat", tinyWAT, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello from wat\n")
	}},
	{"c", echoC, nativeEcho},
	{"go", echoGo, nativeEcho},
}

// nativeEcho does what examples/functions/echo-c and echo-go do.
func nativeEcho(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("X-Function", "echo-native")
	fmt.Fprintf(w, "%s %s?%s\n", r.Method, r.URL.Path, r.URL.RawQuery)
	_, _ = io.Copy(w, r.Body)
}

// firstByteWriter notes when the response header is written.
type firstByteWriter struct {
	header http.Header
	first  time.Time
	status int
}

func (w *firstByteWriter) Header() http.Header { return w.header }
func (w *firstByteWriter) WriteHeader(code int) {
	if w.first.IsZero() {
		w.first, w.status = time.Now(), code
	}
}
func (w *firstByteWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(p), nil
}
func (w *firstByteWriter) Flush() {}

// percentiles returns the p50 and p99 of d, which it sorts.
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

func BenchmarkColdStart(b *testing.B) {
	for _, m := range benchModules {
		b.Run(m.name, func(b *testing.B) {
			f, _ := deploy(b, m.module(b), nil)
			req := httptest.NewRequest(http.MethodGet, "/fn/x", nil)
			measure := func(h func(w http.ResponseWriter, r *http.Request)) []time.Duration {
				d := make([]time.Duration, 0, b.N)
				for range b.N {
					w := &firstByteWriter{header: make(http.Header)}
					start := time.Now()
					h(w, req)
					if w.status != 200 {
						b.Fatalf("status %d", w.status)
					}
					d = append(d, w.first.Sub(start))
				}
				return d
			}
			native := measure(m.native)
			b.ResetTimer()
			cold := measure(func(w http.ResponseWriter, r *http.Request) { f.Serve(r.Context(), w, r, "/x") })
			b.StopTimer()
			p50, p99 := percentiles(cold)
			n50, n99 := percentiles(native)
			b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
			b.ReportMetric(float64(n50.Nanoseconds())/1e3, "native-p50-µs")
			b.ReportMetric(float64(n99.Nanoseconds())/1e3, "native-p99-µs")
			// Where the time goes: instantiating the module alone, before
			// its _start runs any of its code.
			inst := make([]time.Duration, 0, b.N)
			for range b.N {
				start := time.Now()
				i, err := runtime.Start(b.Context(), wasm.Spec{ModulePath: f.cfg.ModulePath, Stdout: io.Discard})
				inst = append(inst, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				i.Stop(0)
			}
			i50, _ := percentiles(inst)
			b.ReportMetric(float64(i50.Microseconds()), "instantiate-p50-µs")
		})
	}
}

func BenchmarkThroughput(b *testing.B) {
	const clients = 8
	for _, m := range benchModules {
		b.Run(m.name, func(b *testing.B) {
			f, _ := deploy(b, m.module(b), func(c *Config) { c.MaxConcurrency, c.MaxQueue = clients, clients })
			run := func(h http.Handler) float64 {
				srv := httptest.NewServer(h)
				defer srv.Close()
				tr := &http.Transport{MaxIdleConnsPerHost: clients}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr}
				var left atomic.Int64
				left.Store(int64(b.N))
				var wg sync.WaitGroup
				start := time.Now()
				for range clients {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							resp, err := client.Get(srv.URL + "/fn/x")
							if err != nil {
								b.Error(err)
								return
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != http.StatusOK {
								b.Errorf("status %d", resp.StatusCode)
								return
							}
						}
					})
				}
				wg.Wait()
				return float64(b.N) / time.Since(start).Seconds()
			}
			native := run(m.native)
			b.ResetTimer()
			fn := run(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				f.Serve(r.Context(), w, r, strings.TrimPrefix(r.URL.Path, "/fn"))
			}))
			b.StopTimer()
			b.ReportMetric(fn, "req/s")
			b.ReportMetric(native, "native-req/s")
			b.ReportMetric(fn/native, "ratio")
		})
	}
}

// BenchmarkIdleMemory deploys 1,000 functions, each its own module (the
// tiny WAT function with a custom section that makes it unique, so that
// each is compiled apart), and reports what each holds once deployed and
// idle: Go heap (runtime.MemStats) and resident memory (/proc/self/statm,
// which counts the compiled code wazero maps outside the heap).
func BenchmarkIdleMemory(b *testing.B) {
	const n = 1000
	module := tinyWAT(b)
	dir := b.TempDir()
	rt, err := wasm.New(b.Context(), wasm.Config{CacheDir: filepath.Join(dir, "cache")}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(context.Background())
	for range b.N {
		heap0, rss0 := memoryNow()
		fns := make([]*Function, 0, n)
		for i := range n {
			path := filepath.Join(dir, strconv.Itoa(i)+".wasm")
			if err := os.WriteFile(path, withCustomSection(module, "unique", strconv.Itoa(i)), 0o644); err != nil {
				b.Fatal(err)
			}
			cfg := DefaultConfig(path)
			f, err := Deploy(b.Context(), rt, cfg)
			if err != nil {
				b.Fatal(err)
			}
			fns = append(fns, f)
		}
		heap1, rss1 := memoryNow()
		b.ReportMetric(float64(heap1-heap0)/n/1024, "heap-KiB/function")
		b.ReportMetric(float64(rss1-rss0)/n/1024, "rss-KiB/function")
		b.ReportMetric(n, "functions")
		// Every one still serves.
		w := httptest.NewRecorder()
		fns[n-1].Serve(b.Context(), w, httptest.NewRequest(http.MethodGet, "/", nil), "/")
		if w.Code != 200 {
			b.Fatalf("function %d: status %d", n-1, w.Code)
		}
		for _, f := range fns {
			f.Close()
		}
	}
}

// memoryNow returns the Go heap in use and the resident set size, after a
// collection.
func memoryNow() (heap, rss int64) {
	goruntime.GC()
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		if fields := strings.Fields(string(b)); len(fields) > 1 {
			pages, _ := strconv.ParseInt(fields[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return int64(ms.HeapInuse), rss
}

// withCustomSection appends a custom section to a module.
func withCustomSection(module []byte, name, content string) []byte {
	payload := append(uleb(uint64(len(name))), name...)
	payload = append(payload, content...)
	out := append(slices.Clone(module), 0)
	out = append(out, uleb(uint64(len(payload)))...)
	return append(out, payload...)
}

func uleb(v uint64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
