package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgefabric/edgefabric/test/fabrictest"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// BenchmarkTunnel measures what goes through the tunnel against the direct
// way in the same run, on one agent running examples/httpserver (WASM) with a
// containerPort served from a preopened socket:
//
//   - port-forward throughput: a 64 MiB GET through kubectl port-forward
//     against the same GET straight to the workload's port;
//   - round trips: a line echoed by `kubectl exec -i ... cat`, and an HTTP
//     request through port-forward, against an HTTP request straight to the
//     workload, each on one connection kept open;
//   - WASM service throughput: requests/s of the WASM server against the same
//     program built natively and run as a process, same load (8 connections);
//     and of examples/cserver (C for WASI, a second pod) against native Go
//     and against its own native build.
func BenchmarkTunnel(b *testing.B) {
	f := startFabric(b, 1)
	ref, _ := f.PushExample("httpserver", "v1", ocitest.Image)
	port := fabrictest.ServicePort(b)
	f.Create(f.Pod("web", ref, func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: int32(port)}}
	}))
	f.WaitPod("web", 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	direct := fmt.Sprintf("127.0.0.1:%d", port)
	waitHTTP(b, direct)
	fwd := f.PortForward("web", port)

	b.Run("PortForwardThroughput", func(b *testing.B) {
		const n = 64 << 20
		var tun, dir []float64
		for range max(b.N, 3) {
			dir = append(dir, download(b, direct, n))
			tun = append(tun, download(b, fwd, n))
		}
		mt, md := median(tun), median(dir)
		// The WASM server makes the bytes slower than the tunnel carries
		// them: the same through port-forward to the server built natively
		// and run as a process pod (port-forward reaches only the ports a
		// pod declares) shows the tunnel's own ceiling.
		nativeRef := f.Registry + "/httpserver-native:v1"
		ocitest.PushNative(b, nativeRef, ocitest.BuildGoNative(b, "examples/httpserver"))
		nport := fabrictest.ServicePort(b)
		f.Create(f.Pod("native-web", nativeRef, fabrictest.Env("PORT", strconv.Itoa(nport)), func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: int32(nport)}}
		}))
		f.WaitPod("native-web", 2*time.Minute, fabrictest.PodReady)
		native := fmt.Sprintf("127.0.0.1:%d", nport)
		waitHTTP(b, native)
		nfwd := f.PortForward("native-web", nport)
		var ntun, ndir []float64
		for range max(b.N, 3) {
			ndir = append(ndir, download(b, native, n))
			ntun = append(ntun, download(b, nfwd, n))
		}
		nt, nd := median(ntun), median(ndir)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(mt, "tunnel-MB/s")
		b.ReportMetric(md, "direct-MB/s")
		b.ReportMetric(mt/md, "ratio")
		b.ReportMetric(nt, "native-tunnel-MB/s")
		b.ReportMetric(nt/nd, "native-ratio")
		report(b, "64 MiB GET, median of %d: WASM server through port-forward %.1f MB/s, direct %.1f MB/s, ratio %.3f; native server through port-forward %.1f MB/s, direct %.1f MB/s, ratio %.3f",
			len(tun), mt, md, mt/md, nt, nd, nt/nd)
	})

	b.Run("RoundTrip", func(b *testing.B) {
		const rounds = 200
		d := httpRTT(b, direct, rounds)
		pf := httpRTT(b, fwd, rounds)
		ex := execRTT(b, f, rounds)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(ex.Microseconds()), "exec-µs")
		b.ReportMetric(float64(pf.Microseconds()), "portforward-µs")
		b.ReportMetric(float64(d.Microseconds()), "direct-µs")
		b.ReportMetric(float64(d)/float64(ex), "exec-ratio")
		report(b, "median round trip of %d: exec -i line echo %s, HTTP through port-forward %s, HTTP direct %s; direct/exec %.3f, direct/port-forward %.3f",
			rounds, ex, pf, d, float64(d)/float64(ex), float64(d)/float64(pf))
	})

	b.Run("WASMvsNative", func(b *testing.B) {
		// The C server (examples/cserver), a module with no language
		// runtime of its own, in a second pod on the same agent.
		cref := f.Registry + "/cserver:v1"
		ocitest.Push(b, cref, ocitest.BuildC(b, "examples/cserver"), ocitest.Image)
		cport := fabrictest.ServicePort(b)
		f.Create(f.Pod("cweb", cref, func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: int32(cport)}}
		}))
		f.WaitPod("cweb", 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		cdirect := fmt.Sprintf("127.0.0.1:%d", cport)
		waitHTTP(b, cdirect)

		native := startNative(b, "")
		native1 := startNative(b, "1") // one thread, as a wasip1 module has
		nativeC := startNativeC(b)
		const dur = 5 * time.Second
		var w, wc, nat, nat1, natc []float64
		for range max(b.N, 2) {
			nat = append(nat, load(b, native, dur))
			nat1 = append(nat1, load(b, native1, dur))
			natc = append(natc, load(b, nativeC, dur))
			w = append(w, load(b, direct, dur))
			wc = append(wc, load(b, cdirect, dur))
		}
		mw, mwc, mn, mn1, mnc := median(w), median(wc), median(nat), median(nat1), median(natc)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(mw, "wasm-req/s")
		b.ReportMetric(mwc, "wasm-c-req/s")
		b.ReportMetric(mn, "native-req/s")
		b.ReportMetric(mn1, "native1-req/s")
		b.ReportMetric(mnc, "native-c-req/s")
		b.ReportMetric(mw/mn, "ratio")
		b.ReportMetric(mw/mn1, "ratio1")
		b.ReportMetric(mwc/mn, "c-ratio")
		b.ReportMetric(mwc/mnc, "c-ratio-c")
		report(b, "GET /work?n=1024, 8 connections, %s each, median of %d: WASM (Go) %.0f req/s, native Go %.0f req/s (GOMAXPROCS=1: %.0f), ratio %.3f (against GOMAXPROCS=1: %.3f; target >= 0.5)",
			dur, len(w), mw, mn, mn1, mw/mn, mw/mn1)
		report(b, "the C server: WASM %.0f req/s, ratio %.3f against native Go (target >= 0.5); native C %.0f req/s, WASM/native C %.3f",
			mwc, mwc/mn, mnc, mwc/mnc)
	})
	f.CheckAlive()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func waitHTTP(tb testing.TB, addr string) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s does not answer: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// download GETs n bytes from addr and returns MB/s.
func download(tb testing.TB, addr string, n int) float64 {
	tb.Helper()
	t0 := time.Now()
	resp, err := http.Get(fmt.Sprintf("http://%s/bytes?n=%d", addr, n))
	if err != nil {
		tb.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != int64(n) {
		tb.Fatalf("GET %d bytes from %s: got %d, %v", n, addr, got, err)
	}
	return float64(n) / 1e6 / time.Since(t0).Seconds()
}

// httpRTT is the median time of a GET / on one kept-alive connection.
func httpRTT(tb testing.TB, addr string, rounds int) time.Duration {
	tb.Helper()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	var ds []time.Duration
	for i := range rounds + 5 {
		t0 := time.Now()
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			tb.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if i >= 5 {
			ds = append(ds, time.Since(t0))
		}
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// execRTT is the median time for a line to come back through
// `kubectl exec -i web -- module.wasm cat`.
func execRTT(tb testing.TB, f *fabrictest.Fabric, rounds int) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Env.KubectlPath, "--kubeconfig", f.Env.Kubeconfig, "exec", "-i", "web", "--", "module.wasm", "cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { stdin.Close(); cancel(); _ = cmd.Wait() }()
	r := bufio.NewReader(stdout)
	var ds []time.Duration
	for i := range rounds + 5 {
		line := fmt.Sprintf("line %d\n", i)
		t0 := time.Now()
		if _, err := io.WriteString(stdin, line); err != nil {
			tb.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != line {
			tb.Fatalf("exec echo: got %q, %v; want %q", got, err, line)
		}
		if i >= 5 {
			ds = append(ds, time.Since(t0))
		}
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// startNative builds examples/httpserver for this machine, runs it (with
// GOMAXPROCS=procs unless empty) and returns its address.
func startNative(tb testing.TB, procs string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "httpserver")
	build := exec.Command("go", "build", "-o", bin, "./examples/httpserver")
	build.Dir = ocitest.RepoRoot(tb)
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	addr := fabrictest.FreePort(tb)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+port)
	if procs != "" {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+procs)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr = "127.0.0.1:" + port
	waitHTTP(tb, addr)
	return addr
}

// startNativeC builds examples/cserver for this machine, runs it and returns
// its address.
func startNativeC(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "cserver")
	if err := os.WriteFile(bin, ocitest.BuildCNative(tb, "examples/cserver"), 0o755); err != nil {
		tb.Fatal(err)
	}
	addr := fabrictest.FreePort(tb)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PORT=" + port}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr = "127.0.0.1:" + port
	waitHTTP(tb, addr)
	return addr
}

// load sends GET /work?n=1024 on 8 kept-alive connections for d and returns
// requests per second.
func load(tb testing.TB, addr string, d time.Duration) float64 {
	tb.Helper()
	const conns = 8
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var n atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(d)
	t0 := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				resp, err := c.Get("http://" + addr + "/work?n=1024")
				if err != nil {
					failed.Store(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !bytes.HasSuffix(b, []byte("\n")) {
					failed.Store(fmt.Errorf("status %d, body %q", resp.StatusCode, b))
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatalf("load on %s: %v", addr, err)
	}
	return float64(n.Load()) / time.Since(t0).Seconds()
}
