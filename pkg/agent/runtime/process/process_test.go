package process_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

var (
	buildOnce sync.Once
	appBinary []byte
	buildErr  error
)

// app returns the test container binary, built static for this machine.
func app(t *testing.T) []byte {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "process-app-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "app")
		cmd := exec.Command("go", "build", "-o", out, "./testdata/app")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = err
			appBinary = b
			return
		}
		appBinary, buildErr = os.ReadFile(out)
	})
	if buildErr != nil {
		t.Fatalf("build test app: %v\n%s", buildErr, appBinary)
	}
	return appBinary
}

// rootfs makes an image root filesystem holding the app at /bin/app.
func rootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"bin", "srv", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "app"), app(t), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newRuntime(t *testing.T, cfg process.Config) *process.Runtime {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("process runtime tests run on Linux")
	}
	cfg.StateDir = t.TempDir()
	r, err := process.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// syncBuffer is a bytes.Buffer safe for the process's writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func wait(t *testing.T, inst *process.Instance, d time.Duration) process.Result {
	t.Helper()
	select {
	case <-inst.Done():
		return inst.Result()
	case <-time.After(d):
		inst.Stop(0)
		t.Fatalf("container did not end within %s", d)
		return process.Result{}
	}
}

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output %q never contained %q", out.String(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// modes are the ways this machine can run containers.
func modes(t *testing.T) []process.Config {
	modes := []process.Config{{NoIsolation: true, NoCgroups: true}}
	if os.Geteuid() == 0 {
		modes = append(modes, process.Config{}, process.Config{UserNS: process.UserNSOff})
	}
	return modes
}

func modeName(c process.Config) string {
	switch {
	case c.NoIsolation:
		return "plain"
	case c.UserNS == process.UserNSOff:
		return "isolated-no-userns"
	}
	return "isolated"
}

func TestRunInfo(t *testing.T) {
	for _, cfg := range modes(t) {
		t.Run(modeName(cfg), func(t *testing.T) {
			r := newRuntime(t, cfg)
			root := rootfs(t)
			vol := t.TempDir()
			if err := os.WriteFile(filepath.Join(vol, "in.txt"), []byte("from the volume"), 0o644); err != nil {
				t.Fatal(err)
			}
			env := []string{"GREETING=hello"}
			if !r.Isolated() {
				env = append(env, "FILE="+filepath.Join(vol, "in.txt"))
			}
			var out syncBuffer
			inst, err := r.Start(t.Context(), process.Spec{
				ID: uniqueID("info"), RootFS: root, Args: []string{"/bin/app", "info", "3"}, Env: env, WorkingDir: "/srv",
				Mounts: []process.Mount{{Name: "data", Source: vol, Target: "/data", ReadOnly: true}},
				Stdout: &out, Stderr: &out,
			})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			res := wait(t, inst, 30*time.Second)
			if res.ExitCode != 3 || res.Reason != reasons.Error {
				t.Errorf("result: got %+v, want exit 3 Error", res)
			}
			got := out.String()
			want := []string{"args=[3]", "GREETING=hello", `file="from the volume" err=<nil>`}
			if r.Isolated() {
				want = append(want, "wd=/srv", "pid=1")
			} else {
				want = append(want, "wd="+filepath.Join(root, "srv"))
			}
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Errorf("output %q: want %q", got, w)
				}
			}
			if r.Isolated() {
				// Writes to / land in the container's own layer, never the image.
				if _, err := os.Stat(filepath.Join(root, "written.txt")); err == nil {
					t.Errorf("the container wrote into the shared image root filesystem")
				}
			}
		})
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		grace    time.Duration
		wantCode int
		wantOut  string
	}{
		{name: "SIGTERM ends it within grace", mode: "serve", grace: 20 * time.Second, wantCode: 0, wantOut: "terminated"},
		{name: "SIGKILL after grace", mode: "stubborn", grace: 300 * time.Millisecond, wantCode: 137},
		{name: "no grace kills at once", mode: "serve", grace: 0, wantCode: 137},
	}
	for _, cfg := range modes(t) {
		for _, tt := range tests {
			t.Run(modeName(cfg)+"/"+tt.name, func(t *testing.T) {
				r := newRuntime(t, cfg)
				var out syncBuffer
				// "app" is found in the image's PATH.
				inst, err := r.Start(t.Context(), process.Spec{ID: uniqueID("stop"), RootFS: rootfs(t), Args: []string{"app", tt.mode}, Stdout: &out, Stderr: &out})
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				waitOutput(t, &out, "running")
				start := time.Now()
				inst.Stop(tt.grace)
				res := inst.Result()
				if res.ExitCode != tt.wantCode {
					t.Errorf("result: got %+v, want exit %d", res, tt.wantCode)
				}
				if tt.wantOut != "" && !strings.Contains(out.String(), tt.wantOut) {
					t.Errorf("output %q: want %q", out.String(), tt.wantOut)
				}
				if took := time.Since(start); tt.grace > time.Second && took > tt.grace {
					t.Errorf("Stop took %s, longer than the grace period", took)
				}
			})
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	cfgs := []process.Config{{NoIsolation: true, NoCgroups: true}}
	if os.Geteuid() == 0 {
		cfgs = append(cfgs, process.Config{NoIsolation: true}, process.Config{})
	}
	for _, cfg := range cfgs {
		name := modeName(cfg)
		if cfg.NoCgroups {
			name += "/watchdog"
		} else {
			name += "/cgroup"
		}
		t.Run(name, func(t *testing.T) {
			r := newRuntime(t, cfg)
			inst, err := r.Start(t.Context(), process.Spec{ID: uniqueID("eat"), RootFS: rootfs(t), Args: []string{"/bin/app", "eat"}, MemoryLimitBytes: 64 << 20})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			res := wait(t, inst, 60*time.Second)
			if res.Reason != reasons.OOMKilled || res.ExitCode != 137 {
				t.Errorf("result: got %+v, want OOMKilled 137", res)
			}
		})
	}
}

func TestExec(t *testing.T) {
	for _, cfg := range modes(t) {
		t.Run(modeName(cfg), func(t *testing.T) {
			r := newRuntime(t, cfg)
			vol := t.TempDir()
			if err := os.WriteFile(filepath.Join(vol, "ok"), []byte("yes"), 0o644); err != nil {
				t.Fatal(err)
			}
			var out syncBuffer
			inst, err := r.Start(t.Context(), process.Spec{
				ID: uniqueID("exec"), RootFS: rootfs(t), Args: []string{"/bin/app", "serve"}, Stdout: &out,
				Mounts: []process.Mount{{Name: "data", Source: vol, Target: "/data"}},
			})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer inst.Stop(0)
			waitOutput(t, &out, "running")
			file := "/data/ok"
			if !r.Isolated() {
				file = filepath.Join(vol, "ok")
			}
			var got bytes.Buffer
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			code, err := inst.Exec(ctx, []string{"/bin/app", "cat", file}, nil, &got, &got)
			if err != nil || code != 0 || got.String() != "yes" {
				t.Errorf("Exec cat: got (%d, %v, %q), want (0, nil, \"yes\")", code, err, got.String())
			}
			code, err = inst.Exec(ctx, []string{"/bin/app", "cat", "/nope"}, nil, io.Discard, io.Discard)
			if err != nil || code != 1 {
				t.Errorf("Exec cat of a missing file: got (%d, %v), want (1, nil)", code, err)
			}
			if r.Isolated() {
				// The device's name resolution is there, read-only.
				var hosts bytes.Buffer
				if code, err := inst.Exec(ctx, []string{"/bin/app", "cat", "/etc/hosts"}, nil, &hosts, &hosts); err != nil || code != 0 || !strings.Contains(hosts.String(), "localhost") {
					t.Errorf("Exec cat /etc/hosts: got (%d, %v, %q), want the device's hosts file", code, err, hosts.String())
				}
			}
			if _, err := inst.Exec(ctx, []string{"/bin/missing"}, nil, io.Discard, io.Discard); err == nil {
				t.Errorf("Exec of a missing executable: got no error")
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	r := newRuntime(t, process.Config{NoIsolation: true})
	tests := []struct {
		name string
		spec process.Spec
		want string
	}{
		{name: "no command", spec: process.Spec{ID: "a", RootFS: rootfs(t)}, want: "no command"},
		{name: "missing executable", spec: process.Spec{ID: "b", RootFS: rootfs(t), Args: []string{"/bin/nope"}}, want: "not found in the image"},
		{name: "not in PATH", spec: process.Spec{ID: "c", RootFS: rootfs(t), Args: []string{"nope"}}, want: "not found in the image's PATH"},
		{name: "missing working dir", spec: process.Spec{ID: "d", RootFS: rootfs(t), Args: []string{"/bin/app"}, WorkingDir: "/nope"}, want: "working directory /nope"},
		{name: "bad id", spec: process.Spec{ID: "../x", RootFS: rootfs(t), Args: []string{"/bin/app"}}, want: "bad container id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Start(t.Context(), tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start: got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestCPULimit: an endless loop with a CPU limit of 100m gets about a tenth
// of a core where the device has a cpu cgroup; the test reports the share.
func TestCPULimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cgroups need root")
	}
	r := newRuntime(t, process.Config{NoIsolation: true})
	inst, err := r.Start(t.Context(), process.Spec{ID: uniqueID("spin"), RootFS: rootfs(t), Args: []string{"/bin/app", "spin"}, CPULimitMillis: 100})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer inst.Stop(0)
	cpu := func() time.Duration {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(inst.Pid()), "stat"))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100
	}
	time.Sleep(500 * time.Millisecond)
	c0, t0 := cpu(), time.Now()
	time.Sleep(3 * time.Second)
	share := float64(cpu()-c0) / float64(time.Since(t0))
	t.Logf("an endless loop limited to 100m used %.2f of a core", share)
	if !strings.Contains(cgroupKind(t), "cpu") {
		t.Skip("no cpu cgroup on this machine: the limit is not enforced")
	}
	if share > 0.3 {
		t.Errorf("an endless loop limited to 100m used %.2f of a core, want about 0.1", share)
	}
}

// cgroupKind says which cpu cgroup the machine offers the agent.
func cgroupKind(t *testing.T) string {
	t.Helper()
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if strings.Contains(string(b), "cpu") {
			return "cpu v2"
		}
		return ""
	}
	for _, c := range []string{"cpu", "cpu,cpuacct"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, "cpu.cfs_quota_us")); err == nil {
			return "cpu v1"
		}
	}
	return ""
}

// uniqueID makes container IDs (and so cgroup names) unique across test
// processes running at once.
func uniqueID(name string) string { return name + "-" + strconv.Itoa(os.Getpid()) }

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := func(v int64) *int64 { return &v }
	tests := []struct {
		spec     string
		uid, gid *int64
		want     process.User
		wantErr  string
	}{
		{spec: "", want: process.User{}},
		{spec: "app", want: process.User{UID: 1000, GID: 1001}},
		{spec: "app:staff", want: process.User{UID: 1000, GID: 50}},
		{spec: "1000", want: process.User{UID: 1000, GID: 1001}},
		{spec: "7:8", want: process.User{UID: 7, GID: 8}},
		{spec: "app", uid: id(2000), want: process.User{UID: 2000}},
		{spec: "app", uid: id(1000), gid: id(3), want: process.User{UID: 1000, GID: 3}},
		{spec: "nobody", wantErr: "not in the image's /etc/passwd"},
		{spec: "app:nogroup", wantErr: "not in the image's /etc/group"},
		{spec: "", uid: id(-1), wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := process.ResolveUser(root, tt.spec, tt.uid, tt.gid)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ResolveUser: got %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ResolveUser: got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestRunAsUser: an isolated container runs as the given user, with no
// supplementary groups of the agent.
func TestRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	r := newRuntime(t, process.Config{})
	vol := t.TempDir()
	if err := os.Chmod(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "in.txt"), []byte("for everyone"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	inst, err := r.Start(t.Context(), process.Spec{
		ID: uniqueID("user"), RootFS: rootfs(t), Args: []string{"/bin/app", "info"}, User: &process.User{UID: 65534, GID: 65533},
		Mounts: []process.Mount{{Name: "data", Source: vol, Target: "/data", ReadOnly: true}}, Stdout: &out, Stderr: &out,
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	wait(t, inst, 30*time.Second)
	for _, want := range []string{"uid=65534 gid=65533", `file="for everyone" err=<nil>`, "write-root-err="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q: want %q", out.String(), want)
		}
	}
}

// TestStaleContainerCleared: the scratch directory of a container whose
// agent crashed is unmounted and removed by the next runtime, and the volume
// that was bound into it keeps its files.
func TestStaleContainerCleared(t *testing.T) {
	if os.Geteuid() != 0 || runtime.GOOS != "linux" {
		t.Skip("mounts need root on Linux")
	}
	state := t.TempDir()
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "keep"), []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(state, "crashed", "merged", "data")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "--bind", vol, target).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", target).Run() })
	r, err := process.New(process.Config{StateDir: state}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := os.Stat(filepath.Join(state, "crashed")); !os.IsNotExist(err) {
		t.Errorf("stale container directory: got %v, want it removed", err)
	}
	if b, err := os.ReadFile(filepath.Join(vol, "keep")); err != nil || string(b) != "precious" {
		t.Errorf("volume after the cleanup: got %q, %v; want its file kept", b, err)
	}
}
