package wasm

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// pollModule builds testdata/poll.wat.tmpl: a poll of the listener on fd 3,
// with a clock subscription of timeout when clock is true.
func pollModule(t *testing.T, clock bool, timeout time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "poll.wat.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	nsubs := "1"
	if clock {
		nsubs = "2"
	}
	src := strings.NewReplacer("NSUBS", nsubs, "TIMEOUT", strconv.FormatInt(int64(timeout), 10)).Replace(string(b))
	file := filepath.Join(t.TempDir(), "poll.wat")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return writeModule(t, ocitest.Wat2Wasm(t, file))
}

// startPolling starts a poll module on a fresh loopback listener and
// returns once the module waits in poll_oneoff, with the listener's address.
func startPolling(t *testing.T, r *Runtime, module string) (*Instance, string) {
	t.Helper()
	inst, addr := serveModule(t, r, Spec{ModulePath: module}, "polling")
	deadline := time.Now().Add(30 * time.Second)
	for inst.pollWaits.Load() == 0 {
		select {
		case <-inst.Done():
			if inst.pollWaits.Load() > 0 { // it waited, and its poll ended at once
				return inst, addr
			}
			t.Fatalf("module ended before it waited in poll_oneoff: %+v (polls left to wazero: %d)", inst.Result(), inst.pollFallbacks.Load())
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("module does not wait in poll_oneoff")
		}
	}
	return inst, addr
}

// blocked checks that inst is still waiting after a while.
func blocked(t *testing.T, inst *Instance, d time.Duration) {
	t.Helper()
	select {
	case <-inst.Done():
		t.Fatalf("poll_oneoff returned with nothing to report: %+v", inst.Result())
	case <-time.After(d):
	}
}

func TestPollOneoff(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sockets are polled for real on Linux only")
	}
	r := newRuntime(t, "")
	for _, tt := range []struct {
		name     string
		clock    bool
		timeout  time.Duration
		connect  bool // after the module waits
		wantCode int  // 10 * nevents + userdata of the first event
		minTime  time.Duration
	}{
		// An idle listener does not end the poll; a connection does,
		// with the socket's event only.
		{name: "socket ready", clock: true, timeout: time.Hour, connect: true, wantCode: 11},
		{name: "socket ready without clock", connect: true, wantCode: 11},
		// No connection: the clock's event, after its timeout.
		{name: "timeout", clock: true, timeout: 300 * time.Millisecond, wantCode: 12, minTime: 300 * time.Millisecond},
		{name: "zero timeout", clock: true, timeout: 0, wantCode: 12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Now()
			inst, addr := startPolling(t, r, pollModule(t, tt.clock, tt.timeout))
			if tt.connect {
				blocked(t, inst, 300*time.Millisecond)
				// The module may end and close the listener before
				// the dial returns: that is a reset, not a failure.
				if c, err := net.Dial("tcp", addr); err == nil {
					defer c.Close()
				} else if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatal(err)
				}
			}
			res := wait(t, inst)
			if res.ExitCode != tt.wantCode {
				t.Errorf("got %+v, want exit code %d", res, tt.wantCode)
			}
			if d := time.Since(t0); d < tt.minTime {
				t.Errorf("ended after %s, before its timeout of %s", d, tt.minTime)
			}
			if n := inst.pollFallbacks.Load(); n != 0 {
				t.Errorf("%d polls left to wazero, want none", n)
			}
		})
	}
}

// TestPollStop stops a module that waits in poll_oneoff with no timeout.
func TestPollStop(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sockets are polled for real on Linux only")
	}
	r := newRuntime(t, "")
	inst, _ := startPolling(t, r, pollModule(t, false, 0))
	blocked(t, inst, 300*time.Millisecond)
	t0 := time.Now()
	stopped := make(chan struct{})
	go func() { inst.Stop(0); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end a module waiting in poll_oneoff")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Stop took %s", d)
	}
	if res := inst.Result(); res.Reason != reasons.Killed {
		t.Errorf("result after Stop: got %+v, want Killed", res)
	}
}

// TestListenersIdle checks that a Go HTTP server (examples/httpserver) that
// has served requests on kept-alive connections sleeps when idle: its polls
// wait on its sockets (listener and accepted connections alike) instead of
// returning at once.
func TestListenersIdle(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sockets are polled for real on Linux only")
	}
	r := newRuntime(t, sharedCache)
	inst, addr := startHTTPServer(t, r)
	defer inst.Stop(0)

	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	for range 20 {
		resp, err := c.Get("http://" + addr + "/work?n=1024")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /work: %s", resp.Status)
		}
	}
	if n := inst.pollFallbacks.Load(); n != 0 {
		t.Errorf("%d polls left to wazero, want none", n)
	}

	// Idle, with a kept-alive connection open: the module waits.
	const idle = time.Second
	waits, cpu := inst.pollWaits.Load(), inst.Usage().CPUNanos
	time.Sleep(idle)
	waits, cpu = inst.pollWaits.Load()-waits, inst.Usage().CPUNanos-cpu
	t.Logf("idle for %s: %d polls, %s of CPU", idle, waits, time.Duration(cpu))
	if waits > 5 {
		t.Errorf("idle for %s: the module polled %d times, want at most 5", idle, waits)
	}

	// And it still answers.
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello from wasm\n" {
		t.Errorf("GET / after idling: got %q", b)
	}
}

// TestPollWrite downloads from a Go HTTP server through a slow reader, so
// that the module's writes fill the socket and it waits for the socket to be
// writable (fd_write subscriptions), and checks every byte arrives.
func TestPollWrite(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sockets are polled for real on Linux only")
	}
	r := newRuntime(t, sharedCache)
	module := filepath.Join(t.TempDir(), "httpserver.wasm")
	if err := os.WriteFile(module, ocitest.BuildGo(t, "examples/httpserver"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	out := newSyncBuffer()
	inst, err := r.Start(t.Context(), Spec{ModulePath: module, Listeners: []string{addr}, Stdout: out, Stderr: out})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(0)
	out.waitFor(t, "serving on")

	const size = 16 << 20
	resp, err := http.Get(fmt.Sprintf("http://%s/bytes?n=%d", addr, size))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read nothing for a while: the module fills the socket's buffers and
	// waits for it to become writable.
	waits := inst.pollWaits.Load()
	time.Sleep(300 * time.Millisecond)
	if got := inst.pollWaits.Load() - waits; got > 5 {
		t.Errorf("the module polled %d times while its socket was full, want at most 5", got)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != size {
		t.Fatalf("GET %d bytes: got %d, %v", size, n, err)
	}
	if n := inst.pollFallbacks.Load(); n != 0 {
		t.Errorf("%d polls left to wazero, want none", n)
	}
}
