package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// WASI as a C program sees it through wasi-libc: testdata/wasicheck, built
// for WASI and run by the Runtime with volumes wired as the supervisor wires
// a pod's (writable ones in Spec.Dirs, read-only ones in Spec.ReadOnlyDirs,
// at their mount paths), and built natively and run as a process where
// Linux's answer is the reference.

const wasicheckDir = "pkg/agent/runtime/wasm/testdata/wasicheck"

var (
	wasicheckOnce sync.Once
	wasicheckPath string
)

// wasicheckModule returns the path of the wasicheck module, built once.
func wasicheckModule(t testing.TB) string {
	t.Helper()
	module := ocitest.BuildC(t, wasicheckDir)
	wasicheckOnce.Do(func() {
		wasicheckPath = filepath.Join(sharedCache, "wasicheck.wasm")
		if err := os.WriteFile(wasicheckPath, module, 0o644); err != nil {
			panic(err)
		}
	})
	return wasicheckPath
}

// wasicheckRun is one run of wasicheck: what it printed and how it ended.
type wasicheckRun struct {
	stdout, stderr string
	exitCode       int
	reason         string // the Result's reason; empty for a native run
}

// runWasicheck runs wasicheck with args (after argv[0]) in r; spec gives the
// rest (ModulePath and Args are set here).
func runWasicheck(t testing.TB, r *Runtime, spec Spec, args ...string) wasicheckRun {
	t.Helper()
	var stdout, stderr bytes.Buffer
	spec.ModulePath = wasicheckModule(t)
	spec.Args = append([]string{"wasicheck"}, args...)
	if spec.Stdout == nil {
		spec.Stdout = &stdout
	}
	if spec.Stderr == nil {
		spec.Stderr = &stderr
	}
	inst, err := r.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	select {
	case <-inst.Done():
		res = inst.Result()
	case <-time.After(60 * time.Second):
		inst.Stop(0)
		t.Fatalf("wasicheck %v did not end; output %q %q", args, stdout.String(), stderr.String())
	}
	return wasicheckRun{stdout: stdout.String(), stderr: stderr.String(), exitCode: res.ExitCode, reason: res.Reason}
}

// runWasicheckNative runs the native build of wasicheck with args, env and
// stdin (nil: empty).
func runWasicheckNative(t testing.TB, env []string, stdin io.Reader, args ...string) wasicheckRun {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wasicheck")
	if err := os.WriteFile(bin, ocitest.BuildCNative(t, wasicheckDir), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Args[0] = "wasicheck"
	cmd.Env = env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	code := 0
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatal(err)
		}
		code = exit.ExitCode()
	}
	return wasicheckRun{stdout: stdout.String(), stderr: stderr.String(), exitCode: code}
}

// results parses wasicheck's "key value" lines.
func results(out string) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		m[k] = v
	}
	return m
}

// fnv32 is wasicheck's checksum (FNV-1a, 32 bits) in hex.
func fnv32(b []byte) string {
	h := fnv.New32a()
	h.Write(b)
	return fmt.Sprintf("%08x", h.Sum32())
}

func TestWASICheckArgsEnv(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	large := strings.Repeat("0123456789abcdef", 64<<10/16) // 64 KiB
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprintf("arg-%d", i)
	}
	for _, tt := range []struct {
		name string
		args []string // after "args" or "env"
		env  []string
	}{
		{name: "none"},
		{name: "empty strings", args: []string{"", "x", ""}, env: []string{"EMPTY="}},
		{name: "spaces and unicode", args: []string{"a b", "ünïcødé ✓", "tab\there", "new\nline"}, env: []string{"A=b c", "U=ü=✓", "EQ=a=b=c"}},
		{name: "large", args: []string{large, large}, env: []string{"BIG=" + large, "BIG2=" + large}},
		{name: "many", args: many, env: many[:0]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := slices.Clone(tt.env)
			if tt.name == "many" {
				for i := range 500 {
					env = append(env, fmt.Sprintf("VAR_%d=value-%d", i, i))
				}
			}
			for _, cmd := range []string{"args", "env"} {
				args := append([]string{cmd}, tt.args...)
				got := runWasicheck(t, r, Spec{Env: env}, args...)
				want := runWasicheckNative(t, env, nil, args...)
				if got.exitCode != 0 || want.exitCode != 0 {
					t.Fatalf("%s: exit codes: wasm %d (%q), native %d (%q)", cmd, got.exitCode, got.stderr, want.exitCode, want.stderr)
				}
				if diff := cmp.Diff(want.stdout, got.stdout); diff != "" {
					t.Errorf("%s: output differs from Linux (-native +wasm):\n%s", cmd, diff)
				}
			}
			// The checksums are the arguments' own, not a shared mistake.
			if len(tt.args) > 0 {
				out := results(runWasicheck(t, r, Spec{Env: env}, append([]string{"args"}, tt.args...)...).stdout)
				if got, want := out["arg0"], fmt.Sprintf("len=%d sum=%s", len(tt.args[0]), fnv32([]byte(tt.args[0]))); got != want {
					t.Errorf("arg0: got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestWASICheckExitCodes(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	for _, tt := range []struct {
		args       []string
		wantCode   int
		wantReason string
	}{
		{[]string{"exit", "0"}, 0, reasons.Completed},
		{[]string{"exit", "1"}, 1, reasons.Error},
		{[]string{"exit", "42"}, 42, reasons.Error},
		{[]string{"exit", "255"}, 255, reasons.Error},
		{[]string{"return", "0"}, 0, reasons.Completed},
		{[]string{"return", "1"}, 1, reasons.Error},
		{[]string{"return", "42"}, 42, reasons.Error},
		{[]string{"return", "255"}, 255, reasons.Error},
		{[]string{"no-such-command"}, 2, reasons.Error},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := runWasicheck(t, r, Spec{}, tt.args...)
			if got.exitCode != tt.wantCode || got.reason != tt.wantReason {
				t.Errorf("got exit %d (%s), want %d (%s)", got.exitCode, got.reason, tt.wantCode, tt.wantReason)
			}
			native := runWasicheckNative(t, nil, nil, tt.args...)
			if native.exitCode != got.exitCode {
				t.Errorf("native exit %d, wasm %d", native.exitCode, got.exitCode)
			}
			if got.stdout != native.stdout || got.stderr != native.stderr {
				t.Errorf("output: wasm %q %q, native %q %q (buffered output must be flushed at exit)", got.stdout, got.stderr, native.stdout, native.stderr)
			}
		})
	}
}

func TestWASICheckClockRandom(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	before := time.Now().Unix()
	clock := results(runWasicheck(t, r, Spec{}, "clock").stdout)
	after := time.Now().Unix()
	for _, key := range []string{"realtime_s", "time_s"} {
		s, err := strconv.ParseInt(clock[key], 10, 64)
		if err != nil || s < before-1 || s > after+1 {
			t.Errorf("%s: got %q, want between %d and %d", key, clock[key], before, after)
		}
	}
	for key, want := range map[string]string{
		"monotonic_backwards": "0",
		"monotonic_positive":  "yes",
		"res_realtime_ok":     "yes",
		"res_monotonic_ok":    "yes",
		// WASI preview 1 has a process CPU-time clock; wazero does not
		// offer it (documented in docs/pods.md).
		"clock_gettime_process_cputime": "EINVAL",
	} {
		if clock[key] != want {
			t.Errorf("%s: got %q, want %q", key, clock[key], want)
		}
	}

	rnd := results(runWasicheck(t, r, Spec{}, "random").stdout)
	want := map[string]string{"getentropy": "ok", "getentropy2": "ok", "getentropy_differ": "yes", "getentropy_spread": "yes", "arc4random_differ": "yes"}
	if diff := cmp.Diff(want, rnd); diff != "" {
		t.Errorf("random (-want +got):\n%s", diff)
	}
}

func TestWASICheckSleep(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	const ms = 100
	start := time.Now()
	out := results(runWasicheck(t, r, Spec{}, "sleep", strconv.Itoa(ms)).stdout)
	elapsed := time.Since(start)
	for _, key := range []string{"nanosleep", "usleep", "clock_nanosleep"} {
		if out[key] != "ok" {
			t.Errorf("%s: got %q, want ok", key, out[key])
		}
		got, err := strconv.Atoi(out[key+"_ms"])
		if err != nil || got < ms || got > ms+2000 {
			t.Errorf("%s slept %q ms, want %d (and not much more)", key, out[key+"_ms"], ms)
		}
	}
	if elapsed < 3*ms*time.Millisecond {
		t.Errorf("the module ended after %v, before its three sleeps of %d ms", elapsed, ms)
	}
}

// chunkReader hands out its data a few bytes at a time, with a pause now
// and then, like a slow pipe.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	c.n++
	if c.n%50 == 0 {
		time.Sleep(time.Millisecond)
	}
	k := min(len(p), len(c.data), 1+c.n%7)
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func TestWASICheckStdin(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, tt := range []struct {
		name  string
		stdin func() io.Reader
		data  []byte
	}{
		{"none", func() io.Reader { return nil }, nil},
		{"empty", func() io.Reader { return strings.NewReader("") }, nil},
		{"one MiB", func() io.Reader { return bytes.NewReader(big) }, big},
		{"partial reads", func() io.Reader { return &chunkReader{data: big[:20000]} }, big[:20000]},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(big[:3000])) }, big[:3000]},
		{"data then error", func() io.Reader {
			return io.MultiReader(bytes.NewReader(big[:100]), iotest.ErrReader(io.ErrUnexpectedEOF))
		}, big[:100]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := runWasicheck(t, r, Spec{Stdin: tt.stdin()}, "stdin")
			got := results(run.stdout)
			want := map[string]string{
				"stdin_bytes":         strconv.Itoa(len(tt.data)),
				"stdin_sum":           fnv32(tt.data),
				"stdin_reads_nonzero": "yes",
				"eof_again":           "0",
				"eof_again2":          "0",
			}
			if tt.name == "data then error" {
				// A failing stdin is an I/O error to the module, not EOF.
				want = map[string]string{"read_error": "EIO"}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\nstderr %q, exit %d", diff, run.stderr, run.exitCode)
			}
		})
	}
}

func TestWASICheckInterleave(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	const n = 200
	var both bytes.Buffer
	run := runWasicheck(t, r, Spec{Stdout: &both, Stderr: &both}, "interleave", strconv.Itoa(n))
	if run.exitCode != 0 {
		t.Fatalf("exit %d", run.exitCode)
	}
	var want strings.Builder
	for i := range n {
		fmt.Fprintf(&want, "out %d\nerr %d\n", i, i)
	}
	if diff := cmp.Diff(want.String(), both.String()); diff != "" {
		t.Errorf("stdout and stderr out of order (-want +got):\n%s", diff)
	}
}

func TestWASICheckPoll(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	t.Run("timeout", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		start := time.Now()
		out := results(runWasicheck(t, r, Spec{Stdin: pr}, "poll", "300").stdout)
		if out["poll"] != "0 ok" || out["poll_revents_in"] != "no" {
			t.Errorf("poll of an idle stdin: got %q (revents in %q), want 0", out["poll"], out["poll_revents_in"])
		}
		if ms, _ := strconv.Atoi(out["poll_ms"]); ms < 300 || time.Since(start) < 300*time.Millisecond {
			t.Errorf("poll returned after %s ms, before its timeout of 300 ms", out["poll_ms"])
		}
	})
	t.Run("late data", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() {
			time.Sleep(300 * time.Millisecond)
			_, _ = pw.Write([]byte("late"))
		}()
		out := results(runWasicheck(t, r, Spec{Stdin: pr}, "poll", "20000").stdout)
		want := map[string]string{"poll": "1 ok", "poll_revents_in": "yes", "poll_read": `"late"`}
		for k, v := range want {
			if out[k] != v {
				t.Errorf("%s: got %q, want %q", k, out[k], v)
			}
		}
		if ms, _ := strconv.Atoi(out["poll_ms"]); ms < 250 || ms > 15000 {
			t.Errorf("poll returned after %d ms, want about 300 (when the data came)", ms)
		}
	})
	t.Run("file and idle stdin", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := results(runWasicheck(t, r, Spec{Stdin: pr, Dirs: map[string]string{"/data": dir}}, "pollfile", "/data/f", "20000").stdout)
		stdinR, stdinW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdinW.Close()
		native := results(runWasicheckNative(t, nil, stdinR, "pollfile", filepath.Join(dir, "f"), "20000").stdout)
		stdinR.Close()
		for _, k := range []string{"poll", "poll_stdin_in", "poll_file_in"} {
			if out[k] != native[k] {
				t.Errorf("%s: got %q, Linux %q (a regular file is always ready)", k, out[k], native[k])
			}
		}
		if ms, _ := strconv.Atoi(out["poll_ms"]); ms > 10000 {
			t.Errorf("poll waited %d ms with a file ready", ms)
		}
	})
	t.Run("data", func(t *testing.T) {
		out := results(runWasicheck(t, r, Spec{Stdin: strings.NewReader("ping")}, "poll", "10000").stdout)
		want := map[string]string{"poll": "1 ok", "poll_revents_in": "yes", "poll_read": `"ping"`}
		for k, v := range want {
			if out[k] != v {
				t.Errorf("%s: got %q, want %q", k, out[k], v)
			}
		}
		if ms, _ := strconv.Atoi(out["poll_ms"]); ms > 5000 {
			t.Errorf("poll of a ready stdin took %d ms", ms)
		}
	})
}

// wasmOnly are the file system results of wasicheck fs where the module
// under wazero and wasi-libc differs from Linux, with the module's value.
var wasmOnly = map[string]string{
	// wasi-libc (Debian's, 2022) emulates the working directory as a
	// string: chdir("..") appends "/.." instead of going up.
	"getcwd_up_is_root": "/data/t/..",
}

func TestWASICheckFS(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	for _, tt := range []struct {
		name  string
		mount string // mount path in the module
	}{
		{"volume", "/data"},
		{"nested volume", "/data/cache"},
		{"deep mount path", "/var/lib/app/state"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dirs := map[string]string{"/data": t.TempDir()}
			dirs[tt.mount] = t.TempDir()
			run := runWasicheck(t, r, Spec{Dirs: dirs}, "fs", tt.mount)
			if run.exitCode != 0 {
				t.Fatalf("exit %d (%s): %s", run.exitCode, run.reason, run.stderr)
			}
			got := results(run.stdout)
			nativeDir := t.TempDir()
			native := runWasicheckNative(t, nil, nil, "fs", nativeDir)
			want := results(native.stdout)
			// What the files it made are to the pod's other containers.
			for _, name := range []string{"t", "t/excl", "t/f", "t/d3", "t/sub/in"} {
				got, want := fileMode(t, filepath.Join(dirs[tt.mount], name)), fileMode(t, filepath.Join(nativeDir, name))
				if got != want {
					t.Errorf("%s: mode %v on the host, %v natively", name, got, want)
				}
			}
			if len(want) < 100 {
				t.Fatalf("native run printed %d results:\n%s%s", len(want), native.stdout, native.stderr)
			}
			for k, v := range wasmOnly {
				want[k] = strings.ReplaceAll(v, "/data", tt.mount)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("differs from Linux (-want +got):\n%s", diff)
			}
		})
	}
}

func fileMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// volumeFiles lays dir out as the supervisor writes a configMap, secret or
// projected volume: the files in a version directory, a ..data link to it
// and a link per top-level name (see writeFiles in pkg/agent/supervisor).
func volumeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	version := filepath.Join(dir, "..v1")
	for name, data := range files {
		p := filepath.Join(version, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		top, _, _ := strings.Cut(name, "/")
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestWASICheckVolumes(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	host := func(name string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	data, cache, config, secret, projected := host("data"), host("cache"), host("config"), host("secret"), host("projected")
	volumeFiles(t, config, map[string]string{"key": "value", "nested/deep": "deep"})
	volumeFiles(t, secret, map[string]string{"token": "s3cr3t"})
	volumeFiles(t, projected, map[string]string{"token": "projected", "ca.crt": "ca"})
	// The mount points of nested volumes, as the host directory has them,
	// with decoys that the module must not see in their place.
	for _, dir := range []string{"secret", "cache"} {
		if err := os.MkdirAll(filepath.Join(data, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "secret", "token"), []byte("decoy"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Dirs:         map[string]string{"/data": data, "/data/cache": cache},
		ReadOnlyDirs: map[string]string{"/etc/config": config, "/data/secret": secret, "/var/run/secrets/projected": projected},
	}
	for _, tt := range []struct {
		args []string
		key  string
		want string
	}{
		{[]string{"cat", "/etc/config/key"}, "cat", `"value"`},
		{[]string{"cat", "/etc/config/nested/deep"}, "cat", `"deep"`},
		{[]string{"cat", "/etc/config/..data/key"}, "cat", `"value"`},
		{[]string{"cat", "/data/secret/token"}, "cat", `"s3cr3t"`},
		{[]string{"cat", "/var/run/secrets/projected/ca.crt"}, "cat", `"ca"`},
		{[]string{"cat", "/data/cache/../secret/token"}, "cat", "EPERM"}, // wasi-libc: ".." out of the mount /data/cache
		{[]string{"cat", "/etc/config/missing"}, "cat", "ENOENT"},
		{[]string{"cat", "/etc/config/key/x"}, "cat", "ENOTDIR"},
		{[]string{"cat", "/nowhere/file"}, "cat", "ENOTCAPABLE"}, // no volume there
		{[]string{"write", "/data/file", "rw"}, "write", "ok"},
		{[]string{"write", "/data/cache/file", "cached"}, "write", "ok"},
		{[]string{"write", "/data/secret/file", "x"}, "write", "EROFS"},
		{[]string{"write", "/data/secret/token", "x"}, "write", "EROFS"},
		{[]string{"write", "/etc/config/key", "x"}, "write", "EROFS"},
		{[]string{"write", "/etc/config/new", "x"}, "write", "EROFS"},
		{[]string{"write", "/var/run/secrets/projected/token", "x"}, "write", "EROFS"},
		{[]string{"write", "/etc/config", "x"}, "write", "EISDIR"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			run := runWasicheck(t, r, spec, tt.args...)
			if got := results(run.stdout)[tt.key]; got != tt.want {
				t.Errorf("%s: got %q, want %q (stderr %q)", tt.key, got, tt.want, run.stderr)
			}
		})
	}
	// The writes went to the right host directories, and only there.
	for file, want := range map[string]string{
		filepath.Join(data, "file"):                 "rw",
		filepath.Join(cache, "file"):                "cached",
		filepath.Join(data, "secret", "token"):      "decoy",
		filepath.Join(secret, "token"):              "s3cr3t",
		filepath.Join(config, "key"):                "value",
		filepath.Join(projected, "..data", "token"): "projected",
	} {
		if b, err := os.ReadFile(file); err != nil || string(b) != want {
			t.Errorf("%s: got %q (%v), want %q", file, b, err, want)
		}
	}
	for _, file := range []string{filepath.Join(data, "cache", "file"), filepath.Join(secret, "file"), filepath.Join(config, "new")} {
		if _, err := os.Lstat(file); err == nil {
			t.Errorf("%s was written", file)
		}
	}
}

func TestWASICheckReadOnly(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	dir := t.TempDir()
	volumeFiles(t, dir, map[string]string{"key": "value"})
	run := runWasicheck(t, r, Spec{ReadOnlyDirs: map[string]string{"/etc/config": dir}}, "ro", "/etc/config", "key")
	want := map[string]string{
		"ro_read":        `"value"`,
		"ro_stat":        "reg size=5 nlink=1",
		"ro_open_write":  "EROFS",
		"ro_open_rdwr":   "EROFS",
		"ro_open_trunc":  "EROFS", // wazero truncated the file
		"ro_open_append": "EROFS",
		"ro_create":      "EROFS",
		"ro_mkdir":       "EROFS",
		"ro_unlink":      "EROFS",
		"ro_rename":      "EROFS",
		"ro_symlink":     "EROFS",
		"ro_link":        "EROFS",
		"ro_utimensat":   "EROFS",
		"ro_open_read":   "ok",
		"ro_ftruncate":   "EBADF", // Linux: EINVAL (the fd is not open for writing)
		"ro_fsync":       "ok",
		"ro_write_fd":    "-1 EBADF",
		"ro_read_after":  `"value"`,
	}
	if diff := cmp.Diff(want, results(run.stdout)); diff != "" {
		t.Errorf("(-want +got):\n%s\nstderr %q", diff, run.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "key")); err != nil || string(b) != "value" {
		t.Errorf("the read-only file holds %q (%v), want %q", b, err, "value")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"..data", "..v1", "key"}, names); diff != "" {
		t.Errorf("the read-only volume changed (-want +got):\n%s", diff)
	}
}

func TestWASICheckEscape(t *testing.T) {
	wasicheckModule(t) // without a C toolchain the whole test skips, not only its subtests
	r := newRuntime(t, sharedCache)
	root := t.TempDir()
	vol, outside := filepath.Join(root, "vol"), filepath.Join(root, "outside")
	for _, dir := range []string{vol, outside} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := runWasicheck(t, r, Spec{Dirs: map[string]string{"/data": vol}}, "escape", "/data")
	got := results(run.stdout)
	want := map[string]string{
		// Symlinks may point anywhere, as on Linux; only following them
		// out of the volume fails.
		"esc_symlink_up":       "ok",
		"esc_readlink_up":      `ok "../outside"`,
		"esc_lstat_up":         "lnk size=10 nlink=1",
		"esc_read_via_up":      "EPERM",
		"esc_stat_via_up":      "EPERM",
		"esc_mkdir_via_up":     "EPERM",
		"esc_create_via_up":    "EPERM",
		"esc_rename_via_up":    "EPERM",
		"esc_link_via_up":      "EPERM",
		"esc_opendir_via_up":   "EPERM",
		"esc_unlink_via_up":    "EPERM",
		"esc_chdir_via_up":     "EPERM",
		"esc_symlink_abs":      "EPERM", // wazero refuses absolute targets
		"esc_read_via_abs":     "ENOENT",
		"esc_symlink_zigzag":   "ok",
		"esc_read_via_zigzag":  "EPERM",
		"esc_symlink_deep":     "ok",
		"esc_read_via_deep":    "EPERM",
		"esc_symlink_dangling": "ok",
		// Creating through a dangling link would create its target.
		"esc_create_via_dangling": "EPERM",
		"esc_symlink_inside":      "ok",
		"esc_rename_symlink_up":   "ok",
		"esc_read_via_moved":      "EPERM",
		"esc_dotdot":              "EPERM",
		"esc_create_dotdot":       "EPERM",
		"esc_symlink_fine":        "ok",
		"esc_read_via_fine":       `"inside"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s\nstderr %q", diff, run.stderr)
	}
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "secret" {
		t.Errorf("the directory next to the volume holds %v, want only secret", entries)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(b) != "secret" {
		t.Errorf("secret: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "made-dotdot")); err == nil {
		t.Error("a file was created next to the volume")
	}
}

// BenchmarkWASIFileOps reports what an open (open, fstat, close) and a stat
// of a file two directories deep in a volume cost a C module, and the same
// natively: the price of resolving paths beneath the volume (see
// hack/wazero/0006-dir-mounts-beneath.patch).
func BenchmarkWASIFileOps(b *testing.B) {
	const n = 20000
	r, err := New(b.Context(), Config{CacheDir: sharedCache}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	for _, kind := range []string{"wasm", "native"} {
		b.Run(kind, func(b *testing.B) {
			var open, stat float64
			for b.Loop() {
				var run wasicheckRun
				if kind == "wasm" {
					run = runWasicheck(b, r, Spec{Dirs: map[string]string{"/data": b.TempDir()}}, "fileops", "/data", strconv.Itoa(n))
				} else {
					run = runWasicheckNative(b, nil, nil, "fileops", b.TempDir(), strconv.Itoa(n))
				}
				out := run.stdout
				res := results(out)
				o, err1 := strconv.ParseFloat(res["open_ns"], 64)
				s, err2 := strconv.ParseFloat(res["stat_ns"], 64)
				if err1 != nil || err2 != nil {
					b.Fatalf("fileops printed %q", out)
				}
				open += o
				stat += s
			}
			b.ReportMetric(open/float64(b.N), "ns/open")
			b.ReportMetric(stat/float64(b.N), "ns/stat")
		})
	}
}

// TestWASICheckWithoutOpenat2 runs the file system checks again in a child
// test process in which wazero resolves volume paths with os.Root, as on a
// kernel without openat2, on Android and on the other Unix systems (patch
// 0006): the same results, and nothing reached outside a volume.
func TestWASICheckWithoutOpenat2(t *testing.T) {
	const env = "WAZERO_EDGEFABRIC_NO_OPENAT2"
	if os.Getenv(env) != "" {
		t.Skip("this is the child")
	}
	if runtime.GOOS != "linux" {
		t.Skip("elsewhere os.Root is the only way, and the other tests check it")
	}
	wasicheckModule(t) // the child's tests skip without a C toolchain: so does this one
	cmd := exec.Command(os.Args[0], "-test.run", "^TestWASICheck(Escape|FS|ReadOnly|Volumes)$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the checks with os.Root: %v\n%s", err, out)
	}
	for _, name := range []string{"TestWASICheckEscape", "TestWASICheckFS", "TestWASICheckReadOnly", "TestWASICheckVolumes"} {
		if !strings.Contains(string(out), "--- PASS: "+name) {
			t.Errorf("%s did not pass in the child:\n%s", name, out)
		}
	}
}
