package supervisor

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/ldisc"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/process"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// Runtime names, as workloads and the hello carry them.
const (
	RuntimeWASM    = "wasm"
	RuntimeProcess = "process"
)

// Runtime starts containers of one kind. Implementations are safe for
// concurrent use; Start returns once the container runs (or could not be
// started) and never blocks on the container itself.
type Runtime interface {
	Start(ctx context.Context, spec ContainerSpec) (Instance, error)
}

// Instance is one running container. Its methods are safe for concurrent use.
type Instance interface {
	// Done is closed when the container has ended.
	Done() <-chan struct{}
	// Result is how it ended; valid once Done is closed.
	Result() Result
	// Stop asks the container to end (SIGTERM for a process, cancellation
	// for a module), waits up to grace, then kills it; it returns once the
	// container has ended.
	Stop(grace time.Duration)
}

// Execer is an Instance that can run another command in the container's
// environment (its root, env, working dir and volumes): exec probes and
// kubectl exec use it. A process container runs the executable argv[0] of
// its image; a wasm container runs its own module again as a WASI command.
type Execer interface {
	Exec(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (exitCode int, err error)
}

// Result is how a container ended, with a container terminated state's
// meaning: Reason is Completed, Error, OOMKilled (or Killed for a module that
// was stopped).
type Result struct {
	ExitCode int
	Reason   string
	Message  string
}

// Mount is a volume as a container sees it.
type Mount struct {
	Name string
	// HostPath is the directory (or file, with a subPath) on the device,
	// resolved beneath its volume when the container started: no symbolic
	// link in it.
	HostPath string
	// Pinned names the same directory for as long as the container runs,
	// whatever is renamed or replaced by a link meanwhile (/proc/self/fd/N
	// of a descriptor the agent holds, on Linux); empty where there is no
	// such name. Runtimes open path(), never HostPath, when there is one.
	Pinned   string
	Path     string // absolute path in the container
	ReadOnly bool
}

// path is the name the runtime opens the mount's directory by.
func (m Mount) path() string {
	if m.Pinned != "" {
		return m.Pinned
	}
	return m.HostPath
}

// ContainerSpec is what a Runtime needs to start one container.
type ContainerSpec struct {
	// ID is unique among running containers: "<workload uid>_<container>".
	ID       string
	Artifact *image.Artifact
	// Args is the full argv, Args[0] the program.
	Args       []string
	Env        []string
	WorkingDir string
	Mounts     []Mount
	// MemoryLimitBytes and CPULimitMillis are the container's limits; 0 means none.
	MemoryLimitBytes int64
	CPULimitMillis   int64
	Stdin            io.Reader
	Stdout, Stderr   io.Writer
	// RunAsUser and RunAsGroup override the image's user (process runtime);
	// RunAsNonRoot refuses to start a container that would run as root.
	RunAsUser, RunAsGroup *int64
	RunAsNonRoot          bool
	// Security is the rest of the securityContext (process runtime): its
	// capabilities and read-only root; Privileged and
	// AllowPrivilegeEscalation (when set) are what the pod asked.
	Security                 process.Security
	Privileged               bool
	AllowPrivilegeEscalation *bool
	// Listeners are the TCP addresses of the container's ports. A WASM
	// container gets them as preopened listening sockets; a process listens
	// on its ports itself.
	Listeners []string
	// TTY gives the container a terminal (a pod's tty: true): a process
	// runs on a pseudo-terminal, a WASM module behind the line discipline
	// the agent plays (package ldisc). Its output then all goes to Stdout.
	TTY bool
}

// Runtimes are the runtimes of a device by name (RuntimeWASM, RuntimeProcess).
type Runtimes map[string]Runtime

// WASM adapts the wasm runtime: volumes become WASI preopens at their mount
// paths (read-only ones read-only).
func WASM(rt *wasm.Runtime) Runtime { return wasmRuntime{rt} }

type wasmRuntime struct{ rt *wasm.Runtime }

func (r wasmRuntime) Start(ctx context.Context, spec ContainerSpec) (Instance, error) {
	ws := wasm.Spec{
		ModulePath:       spec.Artifact.ModulePath,
		Args:             spec.Args,
		Env:              withPWD(spec.Env, spec.WorkingDir),
		MemoryLimitBytes: spec.MemoryLimitBytes,
		CPULimitMillis:   spec.CPULimitMillis,
		Stdin:            spec.Stdin,
		Stdout:           spec.Stdout,
		Stderr:           spec.Stderr,
		Listeners:        spec.Listeners,
	}
	for _, m := range spec.Mounts {
		if m.ReadOnly {
			if ws.ReadOnlyDirs == nil {
				ws.ReadOnlyDirs = map[string]string{}
			}
			ws.ReadOnlyDirs[m.Path] = m.path()
		} else {
			if ws.Dirs == nil {
				ws.Dirs = map[string]string{}
			}
			ws.Dirs[m.Path] = m.path()
		}
	}
	var term *ldisc.Session
	var started atomic.Pointer[wasm.Instance]
	if spec.TTY {
		// ^C ends the module, as SIGINT would a process.
		term = ldisc.New(spec.Stdin, spec.Stdout, func() {
			if inst := started.Load(); inst != nil {
				go inst.Stop(0)
			}
		})
		ws.Stdin, ws.Stdout, ws.Stderr = term.Stdin(), term.Stdout(), term.Stdout()
	}
	inst, err := r.rt.Start(ctx, ws)
	if err != nil {
		return nil, err
	}
	if term != nil {
		started.Store(inst)
		// Not joined: it ends when the container's stdin ends, which the
		// container's end closes, or with term.Close.
		go term.Run()
		go func() {
			<-inst.Done()
			_ = term.Close()
		}()
	}
	return wasmInstance{Instance: inst, rt: r.rt, spec: ws, term: term}, nil
}

// wasmInstance is a running module; it execs by running the container's
// module again as a WASI command with the given argv (argv[0] is only the
// program name), with the container's env and volumes.
// withPWD adds PWD=dir to env unless env sets PWD or dir is empty: WASI has
// no working directory of its own, and runtimes that keep one for the module
// (Go's, for one) take it from PWD, as a shell's children do.
func withPWD(env []string, dir string) []string {
	if dir == "" {
		return env
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "PWD=") {
			return env
		}
	}
	return append(slices.Clip(env), "PWD="+dir)
}

type wasmInstance struct {
	*wasm.Instance
	rt   *wasm.Runtime
	spec wasm.Spec
	term *ldisc.Session // with ContainerSpec.TTY
}

func (i wasmInstance) Exec(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return i.ExecModule(ctx, i.spec.ModulePath, argv, stdin, stdout, stderr)
}

// ExecModule is Exec with another module of the container's image (at the
// host path module).
func (i wasmInstance) ExecModule(ctx context.Context, module string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	select {
	case <-i.Done():
		return -1, errors.New("container is not running")
	default:
	}
	if len(argv) == 0 {
		return -1, errors.New("empty command")
	}
	spec := i.spec
	spec.ModulePath = module
	spec.Args, spec.Stdin, spec.Stdout, spec.Stderr = argv, stdin, stdout, stderr
	spec.Listeners = nil // the container holds its ports
	inst, err := i.rt.Start(ctx, spec)
	if err != nil {
		return -1, err
	}
	select {
	case <-inst.Done():
	case <-ctx.Done():
		inst.Stop(0)
	}
	return inst.Result().ExitCode, nil
}

func (i wasmInstance) Result() Result {
	if i.term != nil && i.term.Interrupted() {
		return Result{ExitCode: 128 + 2, Reason: reasons.Error, Message: "interrupted: ^C on its terminal"}
	}
	r := i.Instance.Result()
	return Result{ExitCode: r.ExitCode, Reason: r.Reason, Message: r.Message}
}

// ProcessPolicy is what the device's owner lets native containers do. The
// zero value runs them where the runtime isolates them (Linux, the agent as
// root), as root when their image says so.
type ProcessPolicy struct {
	// Off refuses every native container.
	Off bool
	// Unisolated runs native containers also where the runtime cannot
	// isolate them: as the agent's user, able to read what the agent can.
	Unisolated bool
	// NoRoot refuses a native container that would run as root (uid 0).
	NoRoot bool
}

// Offers reports whether a device whose process runtime isolates (or not)
// runs native containers at all: the runtimes it announces.
func (p ProcessPolicy) Offers(isolated bool) bool {
	return !p.Off && (isolated || p.Unisolated)
}

// check refuses, with a reason a person can act on, a container the policy
// or the sandbox does not allow; user is who it would run as.
func (p ProcessPolicy) check(spec ContainerSpec, user process.User, isolated bool) error {
	switch {
	case p.Off:
		return errors.New("native containers are turned off on this device (edgeagent --native-workloads=off)")
	case !isolated && !p.Unisolated:
		return errors.New("this device cannot isolate native containers (the agent does not run as root on Linux), and its owner has not allowed them unisolated (edgeagent --native-workloads=unisolated)")
	case spec.Privileged:
		return errors.New("container is privileged: native containers never run privileged")
	case spec.AllowPrivilegeEscalation != nil && *spec.AllowPrivilegeEscalation:
		return errors.New("container has allowPrivilegeEscalation: true: native containers always run with no_new_privs, so no setuid program can raise their privileges")
	case spec.RunAsNonRoot && user.UID == 0:
		return errors.New("container has runAsNonRoot and image will run as root")
	case p.NoRoot && user.UID == 0:
		return errors.New("container would run as root (uid 0), which this device refuses (edgeagent --allow-root-images=false): set runAsUser, or use an image whose USER is not root")
	}
	if _, err := process.Capabilities(spec.Security); err != nil {
		return err
	}
	return nil
}

// Process adapts the process runtime, which runs what policy allows.
func Process(rt *process.Runtime, policy ProcessPolicy) Runtime { return processRuntime{rt, policy} }

type processRuntime struct {
	rt     *process.Runtime
	policy ProcessPolicy
}

func (r processRuntime) Start(ctx context.Context, spec ContainerSpec) (Instance, error) {
	ps := process.Spec{
		ID:               spec.ID,
		RootFS:           spec.Artifact.RootFS,
		Args:             spec.Args,
		Env:              spec.Env,
		WorkingDir:       spec.WorkingDir,
		MemoryLimitBytes: spec.MemoryLimitBytes,
		CPULimitMillis:   spec.CPULimitMillis,
		Stdin:            spec.Stdin,
		Stdout:           spec.Stdout,
		Stderr:           spec.Stderr,
		TTY:              spec.TTY,
	}
	for _, m := range spec.Mounts {
		ps.Mounts = append(ps.Mounts, process.Mount{Name: m.Name, Source: m.HostPath, Pinned: m.Pinned, Target: m.Path, ReadOnly: m.ReadOnly})
	}
	user, err := process.ResolveUser(spec.Artifact.RootFS, spec.Artifact.User, spec.RunAsUser, spec.RunAsGroup)
	if err != nil {
		return nil, err
	}
	if err := r.policy.check(spec, user, r.rt.Isolated()); err != nil {
		return nil, err
	}
	ps.User = &user
	ps.Security = spec.Security
	inst, err := r.rt.Start(ctx, ps)
	if err != nil {
		return nil, err
	}
	pi := processInstance{Instance: inst}
	if userns, why := r.rt.UserNamespaces(); r.rt.Isolated() && !userns && why != "" {
		pi.note = "runs without a user namespace, its root the device's (in the sandbox): " + why
	}
	return pi, nil
}

// sandboxNoter is an instance whose sandbox is weaker than its device's
// owner asked for: SandboxNote says how, for the pod's warning event
// (reasons.NoUserNamespace).
type sandboxNoter interface{ SandboxNote() string }

type processInstance struct {
	*process.Instance
	note string
}

func (i processInstance) SandboxNote() string { return i.note }

func (i processInstance) Result() Result {
	r := i.Instance.Result()
	return Result{ExitCode: r.ExitCode, Reason: r.Reason, Message: r.Message}
}

var (
	_ Runtime  = wasmRuntime{}
	_ Runtime  = processRuntime{}
	_ Instance = wasmInstance{}
	_ Instance = processInstance{}
	_ Execer   = processInstance{}

	_ sandboxNoter = processInstance{}
	_ Execer       = wasmInstance{}

	_ terminalExecer = processInstance{}
	_ resizer        = processInstance{}
)
