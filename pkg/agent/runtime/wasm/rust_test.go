package wasm

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// examples/rusthello, a Rust program built for WASI with rustc and its
// standard library, which uses WASI in Rust's ways: preopens found with
// fd_prestat_*, path_open for files, its own stdout buffering, poll_oneoff
// for sleeping, sock_accept on a blocking listener, panics as traps.

// rustHello returns the path of the examples/rusthello module.
func rustHello(t *testing.T) string {
	t.Helper()
	return writeModule(t, ocitest.BuildRust(t, "examples/rusthello"))
}

func TestRustHello(t *testing.T) {
	r := newRuntime(t, sharedCache)
	module := rustHello(t)

	config := t.TempDir() // a configMap volume: read-only
	if err := os.WriteFile(filepath.Join(config, "greeting"), []byte("hi from a configMap\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir() // an emptyDir
	if err := os.WriteFile(filepath.Join(scratch, "before.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := func(s *Spec) {
		s.Dirs = map[string]string{"/scratch": scratch}
		s.ReadOnlyDirs = map[string]string{"/config": config}
	}

	tests := []struct {
		name       string
		args       []string
		env        []string
		spec       func(*Spec)
		want       Result
		wantStdout []string // substrings
		wantStderr []string // substrings
	}{
		{
			name: "run",
			args: []string{"rusthello", "run", "a b", "ü"},
			env:  []string{"GREETING=hej", "READ_FILE=/config/greeting", "WRITE_DIR=/scratch", "SLEEP_MS=300"},
			spec: mounts,
			want: Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: []string{
				"hello from rust\n",
				`args: ["rusthello", "run", "a b", "ü"]` + "\n",
				"env: GREETING=hej\n",
				"read /config/greeting: hi from a configMap\n",
				`wrote /scratch/rusthello.txt (1 lines); /scratch holds ["before.txt", "rusthello.txt"]` + "\n",
				"(asked 300 ms)\n",
				"done\n",
			},
		},
		{
			name:       "no args",
			want:       Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: []string{"hello from rust\n", `args: ["module.wasm"]`, "done\n"},
		},
		{
			name:       "exit code from env",
			env:        []string{"EXIT_CODE=3"},
			want:       Result{ExitCode: 3, Reason: reasons.Error},
			wantStdout: []string{"hello from rust\n", "exiting with 3\n"},
		},
		{
			name: "exit",
			args: []string{"rusthello", "exit", "42"},
			want: Result{ExitCode: 42, Reason: reasons.Error},
		},
		// Exit codes as a POSIX wait status keeps them: the low 8 bits.
		{name: "exit -1", args: []string{"rusthello", "exit", "-1"}, want: Result{ExitCode: 255, Reason: reasons.Error}},
		{name: "exit -2", args: []string{"rusthello", "exit", "-2"}, want: Result{ExitCode: 254, Reason: reasons.Error}},
		{name: "exit 300", args: []string{"rusthello", "exit", "300"}, want: Result{ExitCode: 44, Reason: reasons.Error}},
		{name: "exit 256", args: []string{"rusthello", "exit", "256"}, want: Result{ExitCode: 0, Reason: reasons.Completed}},
		{
			name:       "panic",
			args:       []string{"rusthello", "panic", "on", "request"},
			want:       Result{ExitCode: 1, Reason: reasons.Error, Message: "<trap>"},
			wantStderr: []string{"panicked at 'on request'"},
		},
		{
			name:       "panic from env",
			env:        []string{"PANIC=boom"},
			want:       Result{ExitCode: 1, Reason: reasons.Error, Message: "<trap>"},
			wantStdout: []string{"hello from rust\n"},
			wantStderr: []string{"panicked at 'boom'"},
		},
		{
			name:       "read-only volume",
			env:        []string{"WRITE_DIR=/config"},
			spec:       mounts,
			want:       Result{ExitCode: 1, Reason: reasons.Error},
			wantStderr: []string{"rusthello: write in /config: "},
		},
		{
			name:       "stdin",
			args:       []string{"rusthello", "cat", "-"},
			spec:       func(s *Spec) { s.Stdin = strings.NewReader("from stdin\n") },
			want:       Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: []string{"read -: from stdin\n"},
		},
		{
			name:       "missing file",
			args:       []string{"rusthello", "cat", "/config/nope"},
			spec:       mounts,
			want:       Result{ExitCode: 1, Reason: reasons.Error},
			wantStderr: []string{"rusthello: read /config/nope: No such file or directory"},
		},
		{
			name:       "no filesystem",
			args:       []string{"rusthello", "cat", "/config/greeting"},
			want:       Result{ExitCode: 1, Reason: reasons.Error},
			wantStderr: []string{"rusthello: read /config/greeting: "},
		},
		{
			name:       "serve without a socket",
			args:       []string{"rusthello", "serve"},
			want:       Result{ExitCode: 1, Reason: reasons.Error},
			wantStderr: []string{"no preopened listening socket"},
		},
		{
			name:       "alloc",
			args:       []string{"rusthello", "alloc", "16"},
			spec:       func(s *Spec) { s.MemoryLimitBytes = 64 << 20 },
			want:       Result{ExitCode: 0, Reason: reasons.Completed},
			wantStdout: []string{"allocated 16 MiB, sum 4096\n"},
		},
		{
			name: "alloc over the memory limit",
			args: []string{"rusthello", "alloc", "128"},
			spec: func(s *Spec) { s.MemoryLimitBytes = 64 << 20 },
			want: Result{ExitCode: 137, Reason: reasons.OOMKilled, Message: "linear memory limit of 67108864 bytes reached"},
		},
		{
			name:       "unknown command",
			args:       []string{"rusthello", "fly"},
			want:       Result{ExitCode: 2, Reason: reasons.Error},
			wantStderr: []string{`unknown command "fly"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := newSyncBuffer(), newSyncBuffer()
			spec := Spec{ModulePath: module, Args: tt.args, Env: tt.env, Stdout: stdout, Stderr: stderr}
			if tt.spec != nil {
				tt.spec(&spec)
			}
			inst, err := r.Start(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			got := wait(t, inst)
			if tt.want.Message == "<trap>" {
				// A panic aborts: Rust's abort is the unreachable instruction.
				if !strings.Contains(got.Message, "unreachable") {
					t.Errorf("got message %q, want a trap on unreachable", got.Message)
				}
				got.Message = tt.want.Message
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s\nstdout: %s\nstderr: %s", diff, stdout, stderr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout %q does not contain %q", stdout, s)
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr %q does not contain %q", stderr, s)
				}
			}
		})
	}

	b, err := os.ReadFile(filepath.Join(scratch, "rusthello.txt"))
	if err != nil || string(b) != "written by rusthello\n" {
		t.Errorf("the module's file in the emptyDir: %q, %v", b, err)
	}
}

// TestRustSleep checks that Rust's thread::sleep (poll_oneoff on a relative
// clock) sleeps as long as asked, with and without preopened sockets.
func TestRustSleep(t *testing.T) {
	r := newRuntime(t, sharedCache)
	module := rustHello(t)
	slept := regexp.MustCompile(`slept (\d+) ms`)
	for _, tt := range []struct {
		name      string
		listeners []string
	}{
		{"no sockets", nil},
		{"with a socket", []string{freeAddr(t)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := newSyncBuffer()
			start := time.Now()
			inst, err := r.Start(t.Context(), Spec{ModulePath: module, Args: []string{"rusthello", "sleep", "400"}, Listeners: tt.listeners, Stdout: out, Stderr: out})
			if err != nil {
				t.Fatal(err)
			}
			if got := wait(t, inst); got != (Result{Reason: reasons.Completed}) {
				t.Fatalf("got %+v, output %q", got, out)
			}
			took := time.Since(start)
			m := slept.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("output %q", out)
			}
			ms, _ := strconv.Atoi(m[1])
			if ms < 400 || took < 400*time.Millisecond {
				t.Errorf("the module slept %d ms (%v in all), want at least 400 ms", ms, took)
			}
		})
	}
}

// startRustServer runs examples/rusthello on a preopened socket, beside a
// preopened directory as a pod with a volume has, with env added, and
// returns once it serves.
func startRustServer(t *testing.T, r *Runtime, env ...string) (*Instance, string) {
	t.Helper()
	config := t.TempDir()
	if err := os.WriteFile(filepath.Join(config, "greeting"), []byte("hi from a file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return serveModule(t, r, Spec{
		ModulePath:   rustHello(t),
		Env:          append([]string{"HOSTNAME=wasm", "READ_FILE=/config/greeting"}, env...),
		ReadOnlyDirs: map[string]string{"/config": config},
	}, "serving HTTP")
}

// rustServerModes are the ways examples/rusthello serves: blocking
// std::net calls, or non-blocking sockets and a poll_oneoff loop.
var rustServerModes = []struct {
	name string
	env  []string
}{
	{"blocking", nil},
	{"poll", []string{"POLL=1"}},
}

func TestRustServer(t *testing.T) {
	r := newRuntime(t, sharedCache)
	for _, mode := range rustServerModes {
		t.Run(mode.name, func(t *testing.T) {
			inst, addr := startRustServer(t, r, mode.env...)
			for _, tt := range []struct {
				method, path, body string
				status             int
				want               string
			}{
				{"GET", "/", "", 200, "hello from rust on wasm\n"},
				{"GET", "/env?HOSTNAME", "", 200, "wasm\n"},
				{"GET", "/env?NOPE", "", 404, "no such variable\n"},
				{"GET", "/file", "", 200, "hi from a file\n"},
				{"POST", "/echo", "some body", 200, "some body"},
				{"POST", "/echo", strings.Repeat("x", 300000), 200, strings.Repeat("x", 300000)},
				{"POST", "/", "", 405, "method not allowed\n"},
				{"GET", "/nope", "", 404, "not found\n"},
			} {
				req, _ := http.NewRequest(tt.method, "http://"+addr+tt.path, strings.NewReader(tt.body))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", tt.method, tt.path, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || string(b) != tt.want {
					t.Errorf("%s %s: got %d %.100q, want %d %.100q", tt.method, tt.path, resp.StatusCode, b, tt.status, tt.want)
				}
			}
			// Garbage gets 400, and the server goes on.
			c := dial(t, addr)
			if _, err := io.WriteString(c, "NOT HTTP AT ALL\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if got := readResponse(t, c, bufio.NewReader(c), "GET"); got.status != 400 {
				t.Errorf("garbage: got %d %q, want 400", got.status, got.body)
			}
			select {
			case <-inst.Done():
				t.Fatalf("the module ended while serving: %+v", inst.Result())
			default:
			}
		})
	}
}

// TestRustServerPollConcurrent checks that the poll_oneoff server answers a
// request while another connection has sent only part of its own, and then
// answers that one too, its polls waiting on the host sockets.
func TestRustServerPollConcurrent(t *testing.T) {
	r := newRuntime(t, sharedCache)
	inst, addr := startRustServer(t, r, "POLL=1")
	slow := dial(t, addr)
	if _, err := io.WriteString(slow, "GET /env?HOSTNAME HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	fast := dial(t, addr)
	if _, err := io.WriteString(fast, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := readResponse(t, fast, bufio.NewReader(fast), "GET"); got.status != 200 || got.body != "hello from rust on wasm\n" {
		t.Errorf("the other connection: got %d %q", got.status, got.body)
	}
	if _, err := io.WriteString(slow, "\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := readResponse(t, slow, bufio.NewReader(slow), "GET"); got.status != 200 || got.body != "wasm\n" {
		t.Errorf("the slow connection: got %d %q", got.status, got.body)
	}
	// Its polls (sockets and a relative clock) waited on the host sockets,
	// none was left to wazero (which would report them ready at once).
	if waits, fallbacks := inst.pollWaits.Load(), inst.pollFallbacks.Load(); waits == 0 || fallbacks != 0 {
		t.Errorf("polls waited on the sockets: %d, left to wazero: %d; want some and none", waits, fallbacks)
	}
}

// TestRustServerStop stops a Rust server blocked on a socket (std::net's are
// blocking): in accept, and in the read of a request that does not come; and
// the poll_oneoff server waiting for that request.
// Stop must end it promptly, as Killed.
func TestRustServerStop(t *testing.T) {
	r := newRuntime(t, sharedCache)
	for _, tt := range []struct {
		name    string
		env     []string
		request string // sent on a connection left open; none: no connection
	}{
		{"in accept", nil, ""},
		{"in read", nil, "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"in poll_oneoff", []string{"POLL=1"}, "GET / HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, addr := startRustServer(t, r, tt.env...)
			if tt.request != "" {
				c := dial(t, addr)
				if _, err := io.WriteString(c, tt.request); err != nil {
					t.Fatal(err)
				}
			}
			// Into the blocking call: there is nothing to wait on for that.
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			stopped := make(chan struct{})
			go func() { inst.Stop(0); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(30 * time.Second):
				t.Fatal("Stop did not return within 30 s") // and the cleanup's Stop hangs
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Stop took %v", took)
			}
			if diff := cmp.Diff(Result{ExitCode: 137, Reason: reasons.Killed, Message: "stopped"}, inst.Result()); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRustPreopensWithSockets reads files of a module that has preopened
// directories and a preopened socket. wasi-libc (under Rust's std and C)
// takes every descriptor fd_prestat_get describes for a preopened
// directory; wazero describes a socket as one named "", a prefix of every
// path, which wins over a directory mounted at "/" and catches the paths
// outside the mounts, so that opening them fails with ENOTDIR.
func TestRustPreopensWithSockets(t *testing.T) {
	r := newRuntime(t, sharedCache)
	module := rustHello(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "x.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mount, path string
		want        Result
		wantOut     string
	}{
		{"/", "/data/x.txt", Result{Reason: reasons.Completed}, "read /data/x.txt: x\n"},
		{"/", "data/x.txt", Result{Reason: reasons.Completed}, "read data/x.txt: x\n"},
		{"/mnt", "/mnt/data/x.txt", Result{Reason: reasons.Completed}, "read /mnt/data/x.txt: x\n"},
		{"/mnt", "/data/x.txt", Result{ExitCode: 1, Reason: reasons.Error}, "rusthello: read /data/x.txt: failed to find a pre-opened file descriptor"},
	} {
		t.Run(tt.mount+" "+tt.path, func(t *testing.T) {
			out := newSyncBuffer()
			inst, err := r.Start(t.Context(), Spec{
				ModulePath: module,
				Args:       []string{"rusthello", "cat", tt.path},
				Dirs:       map[string]string{tt.mount: dir},
				Listeners:  []string{freeAddr(t)},
				Stdout:     out,
				Stderr:     out,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := wait(t, inst); got != tt.want || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("got %+v, output %q; want %+v, output with %q", got, out, tt.want, tt.wantOut)
			}
		})
	}
}
