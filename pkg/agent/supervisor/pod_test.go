package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
	"github.com/edgefabric/edgefabric/test/poll"
)

var (
	appOnce sync.Once
	appRoot string
	appErr  error
)

// nativeRoot returns an image root filesystem with the process runtime's
// test app, built static, at /bin/app.
func nativeRoot(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("process containers are tested on Linux")
	}
	appOnce.Do(func() {
		dir, err := os.MkdirTemp("", "supervisor-native-")
		if err != nil {
			appErr = err
			return
		}
		appRoot = dir
		for _, d := range []string{"bin", "tmp", "data"} {
			if appErr = os.MkdirAll(filepath.Join(dir, d), 0o755); appErr != nil {
				return
			}
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "app"), "../runtime/process/testdata/app")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			appErr = fmt.Errorf("%w: %s", err, out)
		}
	})
	if appErr != nil {
		t.Fatalf("build test app: %v", appErr)
	}
	return appRoot
}

// podImages serves the native test app for references starting with
// "native/" and the wasm hello module for the others.
type podImages struct {
	root   string
	module string
}

func (i podImages) Pull(_ context.Context, ref string, _ image.PullPolicy) (*image.Artifact, error) {
	if strings.HasPrefix(ref, "native/") {
		return &image.Artifact{Ref: ref, ImageID: "sha256:native", Packaging: image.PackagingNative, RootFS: i.root, Platform: runtime.GOOS + "/" + runtime.GOARCH, Entrypoint: []string{"/bin/app"}}, nil
	}
	return &image.Artifact{Ref: ref, ImageID: "sha256:feed", Packaging: image.PackagingWasmArtifact, ModulePath: i.module, Entrypoint: []string{"hello"}}, nil
}

func (i podImages) Lookup(string) (*image.Artifact, error) { return nil, image.ErrNotPresent }

// startPods starts a supervisor with both runtimes; wasm images are the
// hello example, or the module file given.
func startPods(t *testing.T, module ...string) *fixture {
	t.Helper()
	return startPodsWith(t, process.Config{}, module...)
}

// startPodsWith is startPods with the process runtime configured as cfg
// (its StateDir, if empty, in the test's directory).
func startPodsWith(t *testing.T, cfg process.Config, module ...string) *fixture {
	t.Helper()
	root := nativeRoot(t)
	mod := hello(t)
	if len(module) > 0 {
		mod = module[0]
	}
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	wrt, err := wasm.New(t.Context(), wasm.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(dir, "containers")
	}
	prt, err := process.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st}
	f.sup = New(Config{LogDir: filepath.Join(dir, "logs"), PodIP: "10.0.0.9", BackoffBase: 200 * time.Millisecond, SharedMemoryDir: filepath.Join(dir, "shm")},
		podImages{root: root, module: mod}, Runtimes{RuntimeWASM: WASM(wrt), RuntimeProcess: Process(prt, ProcessPolicy{Unisolated: true})}, st, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = f.sup.Run(ctx)
	}()
	t.Cleanup(func() {
		f.stop()
		prt.Close()
		wrt.Close(context.Background())
		st.Close()
	})
	poll.Until(t, 20*time.Second, func() bool { f.sup.mu.Lock(); defer f.sup.mu.Unlock(); return f.sup.ctx != nil })
	return f
}

func native(name string, args ...string) *hubv1.Container {
	return &hubv1.Container{Name: name, Image: "native/app:1", Args: args}
}

func pod(uid, policy string, inits []*hubv1.Container, apps ...*hubv1.Container) *hubv1.Workload {
	return &hubv1.Workload{
		Uid: uid, Namespace: "default", Name: uid, Runtime: RuntimeWASM, RuntimeAuto: true, RestartPolicy: policy,
		InitContainers: inits, Containers: apps, SpecHash: uid, TerminationGraceSeconds: 5,
	}
}

func named(cs []*hubv1.ContainerStatus, name string) *hubv1.ContainerStatus {
	for _, c := range cs {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

func emptyDir(name string) *hubv1.Volume { return &hubv1.Volume{Name: name, Kind: "emptyDir"} }

func mount(c *hubv1.Container, volume, path string) *hubv1.Container {
	c.VolumeMounts = append(c.VolumeMounts, &hubv1.VolumeMount{Name: volume, MountPath: path})
	return c
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestInitContainersInOrder: init containers run one after the other to
// completion, a sidecar starts and keeps running, then the app runs; the log
// they share in an emptyDir shows the order.
func TestInitContainersInOrder(t *testing.T) {
	f := startPods(t)
	w := pod("init", "Never",
		[]*hubv1.Container{
			mount(native("first", "append", "/shared/order", "first"), "shared", "/shared"),
			mount(native("side", "serve"), "shared", "/shared"),
			mount(native("second", "append", "/shared/order", "second"), "shared", "/shared"),
		},
		mount(native("app", "append", "/shared/order", "app"), "shared", "/shared"),
	)
	w.InitContainers[1].RestartPolicy = "Always"
	w.Volumes = []*hubv1.Volume{emptyDir("shared")}
	if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.sup, "init", func(st *hubv1.WorkloadStatus) bool {
		return named(st.GetContainers(), "app").GetState().GetTerminated() != nil
	})
	for _, name := range []string{"first", "second"} {
		if term := named(st.GetInitContainers(), name).GetState().GetTerminated(); term.GetExitCode() != 0 {
			t.Errorf("init container %s: got %v, want completed", name, named(st.GetInitContainers(), name))
		}
	}
	// The sidecar stops once the app has completed.
	waitStatus(t, f.sup, "init", func(st *hubv1.WorkloadStatus) bool {
		return named(st.GetInitContainers(), "side").GetState().GetTerminated() != nil
	})
	b, err := os.ReadFile(filepath.Join(f.sup.cfg.VolumeDir, "init", "volumes", "shared", "order"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "first\nsecond\napp\n"; got != want {
		t.Errorf("order: got %q, want %q", got, want)
	}
}

// TestInitContainerFailure: under Never a failing init container ends the
// pod and the app never starts; under Always it is restarted with back-off.
func TestInitContainerFailure(t *testing.T) {
	tests := []struct {
		policy string
		check  func(st *hubv1.WorkloadStatus) bool
	}{
		{policy: "Never", check: func(st *hubv1.WorkloadStatus) bool {
			return named(st.GetInitContainers(), "bad").GetState().GetTerminated().GetExitCode() == 4
		}},
		{policy: "Always", check: func(st *hubv1.WorkloadStatus) bool {
			bad := named(st.GetInitContainers(), "bad")
			return bad.GetRestartCount() >= 1 && bad.GetLastState().GetTerminated().GetExitCode() == 4
		}},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			f := startPods(t)
			uid := "fail-" + strings.ToLower(tt.policy)
			w := pod(uid, tt.policy, []*hubv1.Container{native("bad", "append", "/tmp/x", "x", "4")}, native("app", "serve"))
			if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
				t.Fatal(err)
			}
			st := waitStatus(t, f.sup, uid, tt.check)
			if app := named(st.GetContainers(), "app"); app.GetState().GetWaiting().GetReason() != reasons.PodInitializing {
				t.Errorf("app: got %v, want waiting PodInitializing", app)
			}
		})
	}
}

// TestProbes: started follows an HTTP startup probe and readiness an HTTP
// readiness probe, while a passing TCP liveness probe restarts nothing.
func TestProbes(t *testing.T) {
	f := startPods(t)
	port := freePort(t)
	c := native("web", "http")
	c.Env = []*hubv1.EnvVar{{Name: "PORT", Value: strconv.Itoa(port)}, {Name: "SICK", Value: "/probe/sick"}}
	c.VolumeMounts = []*hubv1.VolumeMount{{Name: "probe", MountPath: "/probe"}}
	httpGet := &hubv1.Probe_HttpGet{HttpGet: &hubv1.Probe_HTTPGet{Path: "/healthz", Port: int32(port)}}
	c.ReadinessProbe = &hubv1.Probe{Handler: httpGet, PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1}
	c.LivenessProbe = &hubv1.Probe{Handler: &hubv1.Probe_TcpSocket{TcpSocket: &hubv1.Probe_TCPSocket{Port: int32(port)}}, PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 2}
	c.StartupProbe = &hubv1.Probe{Handler: httpGet, PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 30}
	w := pod("probes", "Always", nil, c)
	w.Volumes = []*hubv1.Volume{emptyDir("probe")}
	if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "probes", func(st *hubv1.WorkloadStatus) bool {
		cs := container(st)
		return cs.GetStarted() && cs.GetReady()
	})
	// Sick: readiness fails, the container stays running and started.
	sick := filepath.Join(f.sup.cfg.VolumeDir, "probes", "volumes", "probe", "sick")
	if err := os.WriteFile(sick, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.sup, "probes", func(st *hubv1.WorkloadStatus) bool { return !container(st).GetReady() })
	if cs := container(st); cs.GetState().GetRunning() == nil || !cs.GetStarted() {
		t.Errorf("unready container: got %v, want running and started", cs)
	}
	if err := os.Remove(sick); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, f.sup, "probes", func(st *hubv1.WorkloadStatus) bool { return container(st).GetReady() })
	// The TCP liveness probe passed all along: no restart.
	if got := container(st).GetRestartCount(); got != 0 {
		t.Errorf("restart count: got %d, want 0", got)
	}
}

// TestLivenessRestart: an exec liveness probe that fails restarts the
// container; events say Unhealthy and Killing.
func TestLivenessRestart(t *testing.T) {
	f := startPods(t)
	c := native("app", "serve")
	c.LivenessProbe = &hubv1.Probe{
		Handler:       &hubv1.Probe_Exec_{Exec: &hubv1.Probe_Exec{Command: []string{"/bin/app", "cat", "/nonexistent"}}},
		PeriodSeconds: 1, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 2, TerminationGraceSeconds: 1,
	}
	if err := f.sup.SetDesired(1, []*hubv1.Workload{pod("live", "Always", nil, c)}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.sup, "live", func(st *hubv1.WorkloadStatus) bool { return container(st).GetRestartCount() >= 1 })
	if last := container(st).GetLastState().GetTerminated(); last == nil {
		t.Errorf("last state: got %v, want terminated", container(st).GetLastState())
	}
	var unhealthy, killing bool
	for _, e := range f.sup.TakeReport().GetEvents() {
		unhealthy = unhealthy || (e.GetReason() == reasons.Unhealthy && strings.Contains(e.GetMessage(), "Liveness probe failed"))
		killing = killing || (e.GetReason() == reasons.Killing && strings.Contains(e.GetMessage(), "failed liveness probe, will be restarted"))
	}
	if !unhealthy || !killing {
		t.Errorf("events: got Unhealthy %v, Killing %v; want both", unhealthy, killing)
	}
}

// TestNoUserNamespaceEvent: a native container that runs without the user
// namespace the device's owner asked for where possible (the state
// directory's file system, ramfs, has no idmapped mounts) runs, and its pod
// gets a warning event saying so and why; with one, no such event.
func TestNoUserNamespaceEvent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	ramfs := t.TempDir()
	if out, err := exec.Command("mount", "-t", "ramfs", "ramfs", ramfs).CombinedOutput(); err != nil {
		t.Skipf("mount ramfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", ramfs).Run() })
	for _, tt := range []struct {
		name      string
		stateDir  string
		wantEvent bool
	}{
		{name: "without", stateDir: ramfs, wantEvent: true},
		{name: "with", wantEvent: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := startPodsWith(t, process.Config{StateDir: tt.stateDir})
			if err := f.sup.SetDesired(1, []*hubv1.Workload{pod("userns", "Never", nil, native("app", "info"))}); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, f.sup, "userns", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetTerminated() != nil })
			var got []string
			for _, e := range f.sup.TakeReport().GetEvents() {
				if e.GetReason() == reasons.NoUserNamespace {
					got = append(got, e.GetType()+" "+e.GetMessage())
				}
			}
			if tt.wantEvent && (len(got) != 1 || !strings.Contains(got[0], "Warning runs without a user namespace") || !strings.Contains(got[0], "idmapped mounts")) {
				t.Errorf("events %s: got %q, want one warning with the reason", reasons.NoUserNamespace, got)
			}
			if !tt.wantEvent && len(got) != 0 {
				t.Errorf("events %s: got %q, want none", reasons.NoUserNamespace, got)
			}
		})
	}
}

// TestVolumeUpdate: a configMap volume's files change in place when only
// the volumes hash changes, without restarting the container; the ..data
// link swaps atomically.
func TestVolumeUpdate(t *testing.T) {
	for _, image := range []string{"native/app:1", "reg/hello:1"} {
		t.Run(strings.Split(image, "/")[0], func(t *testing.T) {
			f := startPods(t)
			c := &hubv1.Container{Name: "app", Image: image, Args: []string{"serve"}, Env: []*hubv1.EnvVar{{Name: "INTERVAL", Value: "50ms"}}}
			c.VolumeMounts = []*hubv1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}}
			w := pod("vol", "Always", nil, c)
			files := func(v string) []*hubv1.VolumeFile {
				return []*hubv1.VolumeFile{{Path: "mode", Data: []byte(v), Mode: 0o644}}
			}
			w.Volumes = []*hubv1.Volume{{Name: "cfg", Kind: "configMap", Files: files("fast")}}
			w.VolumesHash = "1"
			if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, f.sup, "vol", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetRunning() != nil })
			file := filepath.Join(f.sup.cfg.VolumeDir, "vol", "volumes", "cfg", "mode")
			if b, err := os.ReadFile(file); err != nil || string(b) != "fast" {
				t.Fatalf("mode: got %q (%v), want fast", b, err)
			}
			w2 := pod("vol", "Always", nil, c)
			w2.Volumes = []*hubv1.Volume{{Name: "cfg", Kind: "configMap", Files: files("slow")}}
			w2.VolumesHash = "2"
			if err := f.sup.SetDesired(2, []*hubv1.Workload{w2}); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(file); err != nil || string(b) != "slow" {
				t.Errorf("mode after update: got %q (%v), want slow", b, err)
			}
			if link, err := os.Readlink(file); err != nil || link != "..data/mode" {
				t.Errorf("mode: got link %q (%v), want ..data/mode", link, err)
			}
			if st := f.sup.Statuses()[0]; container(st).GetRestartCount() != 0 || container(st).GetState().GetRunning() == nil {
				t.Errorf("container after the update: got %v, want still running, no restart", container(st))
			}
		})
	}
}

// TestSecretVolumeInMemory: a sensitive volume never lands on the data
// directory's disk.
func TestSecretVolumeInMemory(t *testing.T) {
	f := startPods(t)
	c := mount(native("app", "serve"), "creds", "/creds")
	w := pod("sec", "Always", nil, c)
	w.Volumes = []*hubv1.Volume{{Name: "creds", Kind: "secret", Sensitive: true, Files: []*hubv1.VolumeFile{{Path: "password", Data: []byte("hunter2"), Mode: 0o400}}}}
	if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "sec", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetRunning() != nil })
	// Whatever the device offered (a tmpfs as root, else the shared-memory
	// directory), the file is not under the volumes directory on disk
	// unless that is a tmpfs mount.
	p := filepath.Join(f.sup.cfg.VolumeDir, "sec", "memory", "creds", "password")
	if b, err := os.ReadFile(p); err == nil {
		if !isTmpfs(t, filepath.Dir(p)) {
			t.Errorf("secret at %s (%q) is on disk", p, b)
		}
	} else if b, err := os.ReadFile(filepath.Join(f.sup.cfg.SharedMemoryDir, "sec", "creds", "password")); err != nil || string(b) != "hunter2" {
		t.Errorf("secret in shared memory: got %q (%v)", b, err)
	}
	if err := f.sup.SetDesired(2, nil); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, func() bool { _, err := os.Stat(filepath.Join(f.sup.cfg.VolumeDir, "sec")); return os.IsNotExist(err) })
}

// TestOOMKilledProcess: a process over its memory limit ends OOMKilled and
// the agent lives on.
func TestOOMKilledProcess(t *testing.T) {
	f := startPods(t)
	c := native("eat", "eat")
	c.MemoryLimitBytes = 48 << 20
	if err := f.sup.SetDesired(1, []*hubv1.Workload{pod("oom", "Never", nil, c)}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.sup, "oom", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetTerminated() != nil })
	if term := container(st).GetState().GetTerminated(); term.GetReason() != reasons.OOMKilled || term.GetExitCode() != 137 {
		t.Errorf("got %v, want OOMKilled 137", term)
	}
}

// TestRuntimeChoice: the runtime class and the image's platform must agree.
func TestRuntimeChoice(t *testing.T) {
	tests := []struct {
		name    string
		runtime string
		auto    bool
		image   string
		want    string // in the StartError message; "" for a start
	}{
		{name: "auto picks process for a native image", runtime: RuntimeWASM, auto: true, image: "native/app:1"},
		{name: "process class runs a native image", runtime: RuntimeProcess, image: "native/app:1"},
		{name: "wasm class refuses a native image", runtime: RuntimeWASM, image: "native/app:1", want: "runs WebAssembly modules only"},
		{name: "process class refuses a module", runtime: RuntimeProcess, image: "reg/hello:1", want: "runs native images only"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startPods(t)
			uid := fmt.Sprintf("rt%d", i)
			w := pod(uid, "Never", nil, &hubv1.Container{Name: "app", Image: tt.image, Args: []string{"info", "0"}})
			w.Runtime, w.RuntimeAuto = tt.runtime, tt.auto
			if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
				t.Fatal(err)
			}
			st := waitStatus(t, f.sup, uid, func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetTerminated() != nil })
			term := container(st).GetState().GetTerminated()
			if tt.want == "" && term.GetReason() == reasons.StartError {
				t.Errorf("got %v, want it started", term)
			}
			if tt.want != "" && (term.GetReason() != reasons.StartError || !strings.Contains(term.GetMessage(), tt.want)) {
				t.Errorf("got %v, want StartError containing %q", term, tt.want)
			}
		})
	}
}

func isTmpfs(t *testing.T, dir string) bool {
	t.Helper()
	out, err := exec.Command("stat", "-f", "-c", "%T", dir).Output()
	return err == nil && strings.TrimSpace(string(out)) == "tmpfs"
}

// TestWasmExecProbe: an exec probe of a wasm container runs its module as a
// WASI command with the container's env and volumes; once it fails, the
// container is restarted.
func TestWasmExecProbe(t *testing.T) {
	module := filepath.Join(t.TempDir(), "health.wasm")
	if err := os.WriteFile(module, ocitest.BuildGo(t, "examples/health"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startPods(t, module)
	c := &hubv1.Container{Name: "app", Image: "reg/health:1", Env: []*hubv1.EnvVar{{Name: "SICK_FILE", Value: "/probe/sick"}}}
	c.VolumeMounts = []*hubv1.VolumeMount{{Name: "probe", MountPath: "/probe"}}
	c.LivenessProbe = &hubv1.Probe{
		Handler:       &hubv1.Probe_Exec_{Exec: &hubv1.Probe_Exec{Command: []string{"health", "check"}}},
		PeriodSeconds: 1, TimeoutSeconds: 10, SuccessThreshold: 1, FailureThreshold: 1,
	}
	w := pod("wexec", "Always", nil, c)
	w.Volumes = []*hubv1.Volume{emptyDir("probe")}
	if err := f.sup.SetDesired(1, []*hubv1.Workload{w}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "wexec", func(st *hubv1.WorkloadStatus) bool { return container(st).GetReady() })
	time.Sleep(3 * time.Second) // several passing probes
	if st := f.sup.Statuses()[0]; container(st).GetRestartCount() != 0 {
		t.Fatalf("restarted while its exec probe passes: %v", container(st))
	}
	if err := os.WriteFile(filepath.Join(f.sup.cfg.VolumeDir, "wexec", "volumes", "probe", "sick"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, f.sup, "wexec", func(st *hubv1.WorkloadStatus) bool { return container(st).GetRestartCount() >= 1 })
}

// TestRunAsNonRoot: a process container that would run as root under
// runAsNonRoot does not start, and says why; with a user it starts.
func TestRunAsNonRoot(t *testing.T) {
	f := startPods(t)
	root := native("root", "info", "0")
	root.RunAsNonRoot = true
	user := native("user", "info", "0")
	uid := int64(65534)
	user.RunAsNonRoot, user.RunAsUser = true, &uid
	if err := f.sup.SetDesired(1, []*hubv1.Workload{pod("nonroot", "Never", nil, root), pod("asuser", "Never", nil, user)}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, f.sup, "nonroot", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetTerminated() != nil })
	if term := container(st).GetState().GetTerminated(); term.GetReason() != reasons.StartError || !strings.Contains(term.GetMessage(), "runAsNonRoot and image will run as root") {
		t.Errorf("root under runAsNonRoot: got %v, want a StartError", term)
	}
	st = waitStatus(t, f.sup, "asuser", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetTerminated() != nil })
	if term := container(st).GetState().GetTerminated(); term.GetReason() == reasons.StartError {
		t.Errorf("user 65534 under runAsNonRoot: got %v, want it started", term)
	}
}

// TestOrphanVolumesRemoved: volumes of pods the device no longer runs (left
// by a crash) are unmounted and removed when the supervisor starts; those of
// desired pods stay.
func TestOrphanVolumesRemoved(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("tmpfs needs root")
	}
	dir := t.TempDir()
	volumes := filepath.Join(dir, "volumes")
	orphan := filepath.Join(volumes, "gone", "memory", "creds")
	kept := filepath.Join(volumes, "kept", "volumes", "data")
	for _, d := range []string{orphan, kept} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "tmpfs", orphan).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", orphan).Run() })
	if err := os.WriteFile(filepath.Join(orphan, "password"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "agent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// "kept" is desired, with a native container that keeps running.
	if err := st.SetDesired(1, []*hubv1.Workload{pod("kept", "Always", nil, native("app", "serve"))}); err != nil {
		t.Fatal(err)
	}
	root := nativeRoot(t)
	prt, err := process.New(process.Config{StateDir: filepath.Join(dir, "containers")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer prt.Close()
	sup := New(Config{LogDir: filepath.Join(dir, "logs"), VolumeDir: volumes}, podImages{root: root}, Runtimes{RuntimeProcess: Process(prt, ProcessPolicy{Unisolated: true})}, st, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitStatus(t, sup, "kept", func(st *hubv1.WorkloadStatus) bool { return container(st).GetState().GetRunning() != nil })
	if _, err := os.Stat(filepath.Join(volumes, "gone")); !os.IsNotExist(err) {
		t.Errorf("orphan volumes: got %v, want them removed", err)
	}
	if isTmpfs(t, orphan) {
		t.Errorf("the orphan's tmpfs is still mounted")
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("volumes of a desired pod: %v", err)
	}
}
