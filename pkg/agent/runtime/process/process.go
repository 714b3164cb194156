// Package process runs native executables from unpacked OCI images as child
// processes of the agent: the edgefabric "process" runtime.
//
// A Runtime is created once per agent. Start runs one container: its argv,
// environment and working directory come from the Spec; its limits are
// enforced with cgroups (v2, else v1) where the device offers them, and
// otherwise with a watchdog that kills a container whose resident memory
// goes over its limit. On Linux, as root, a container is a real lite
// container: it runs chrooted into an overlay of the image's root filesystem
// (writes go to a per-container layer, never the shared image), in its own
// user namespace where the kernel allows it (Config.UserNS: its ids 0-65535
// a range of the device's of its own, the image and volumes idmapped
// mounts), mount and PID namespaces, with its volumes bind-mounted at their
// mount paths, pivot_root'ed into that root by its init (the agent's binary
// re-executed, see runInit) and confined: Docker's capabilities at most,
// no_new_privs, a seccomp filter (see docs/security.md). Exec'd processes
// join its namespaces and confinement (in a user namespace, through the
// joiner, see runJoin). Elsewhere it runs in the unpacked
// image directory with its volume paths given in the environment
// (EDGEFABRIC_VOLUME_<NAME>), with no_new_privs and the filter on Linux.
//
// A binary that runs containers must import this package: its init starts
// the container's init when the binary is re-executed as one, and keeps the
// main goroutine on the main thread (see sandbox_linux.go).
//
// The caller waits on Instance.Done and reads Instance.Result, or ends it
// with Instance.Stop: SIGTERM, then SIGKILL after the grace period.
package process

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// Result is how a container ended.
type Result struct {
	// ExitCode is the process's exit status, or 128+signal if a signal
	// ended it (137 for SIGKILL).
	ExitCode int
	// Reason is reasons.Completed (exited with status 0), reasons.Error
	// (exited with another status or was killed) or reasons.OOMKilled (went
	// over its memory limit and was killed).
	Reason string
	// Message explains an OOMKilled or signalled container.
	Message string
}

// Mount is a host directory shown inside the container.
type Mount struct {
	// Name is the volume's name (for EDGEFABRIC_VOLUME_<NAME> when not isolated).
	Name string
	// Source is the host directory.
	Source string
	// Pinned, if set, names Source's directory for as long as the container
	// runs (/proc/self/fd/N of a descriptor the agent holds): the bind
	// mount takes it, so that a link the workload swapped in for a
	// directory of Source's path is not followed.
	Pinned string
	// Target is the absolute path inside the container.
	Target   string
	ReadOnly bool
}

// Spec describes one run of a container.
type Spec struct {
	// ID names the container's cgroup and scratch directory; unique among
	// running containers and made of [A-Za-z0-9._-].
	ID string
	// RootFS is the image's unpacked root filesystem; it is never written.
	RootFS string
	// Args is the full argv; Args[0] is the executable, an absolute path in
	// the image or a name looked up in the PATH of Env inside the image.
	Args []string
	// Env holds "KEY=VALUE" entries.
	Env []string
	// WorkingDir is a directory in the image; empty means "/".
	WorkingDir string
	// Mounts are the container's volumes.
	Mounts []Mount
	// MemoryLimitBytes and CPULimitMillis are the container's limits; 0 means
	// none.
	MemoryLimitBytes int64
	CPULimitMillis   int64
	// Stdin is the container's standard input; nil reads as empty.
	Stdin io.Reader
	// Stdout and Stderr receive the container's output; nil discards it.
	Stdout, Stderr io.Writer
	// User is who the container runs as when isolated; nil is root. A plain
	// (not isolated) container runs as the agent's user.
	User *User
	// Security confines the container beyond the sandbox every native
	// container gets (see Runtime).
	Security Security
	// TTY runs the container on a pseudo-terminal (a pod's tty: true): its
	// stdin, stdout and stderr, read from Stdin and written to Stdout only.
	// Instance.Resize sets its size. Where there are no pseudo-terminals it
	// runs with pipes, as without TTY.
	TTY bool
}

// Config configures a Runtime.
type Config struct {
	// StateDir holds per-container scratch directories (overlay layers and
	// mount points); required. Created if missing.
	StateDir string
	// NoIsolation runs containers as plain child processes even where
	// namespaces and chroot are available.
	NoIsolation bool
	// NoCgroups never uses cgroups (limits fall back to the watchdog).
	NoCgroups bool
	// WatchInterval is how often the memory watchdog samples a container
	// without a cgroup; zero means 250 ms.
	WatchInterval time.Duration
	// UserNS says whether isolated containers run in a user namespace, so
	// that their root is an unprivileged user of the device: UserNSAuto
	// (empty means it) where the kernel allows it (user namespaces and
	// idmapped mounts of the state directory's file system), UserNSRequired
	// the same but New fails where it does not, UserNSOff never.
	UserNS string
	// UserNSBase is the first host uid (and gid) of the ranges containers
	// are mapped to; zero means DefaultUserNSBase. Each running container
	// takes a range of its own of UserNSSize ids: its uid k is the host's
	// UserNSBase + n*UserNSSize + k.
	UserNSBase uint32
	// UserNSRanges is how many ranges there are, the most containers that
	// run at once in user namespaces; zero means DefaultUserNSRanges. A
	// container started when all are taken fails to start.
	UserNSRanges int
}

// Values of Config.UserNS.
const (
	UserNSAuto     = "auto"
	UserNSRequired = "required"
	UserNSOff      = "off"
)

// Defaults of the user namespace ranges: 1024 ranges of 65536 ids from
// 2^30, far above the ids distributions give users and the subordinate
// ranges they write to /etc/subuid (100000 and up), so that no container
// shares a host uid with a person or another container engine.
const (
	UserNSSize          = 65536
	DefaultUserNSBase   = 1 << 30
	DefaultUserNSRanges = 1024
)

// Validate checks the configuration.
func (c Config) Validate() error {
	switch c.UserNS {
	case "", UserNSAuto, UserNSRequired, UserNSOff:
	default:
		return fmt.Errorf("user namespaces %q: want %s, %s or %s", c.UserNS, UserNSAuto, UserNSRequired, UserNSOff)
	}
	if c.UserNSRanges < 0 {
		return fmt.Errorf("user namespace ranges %d: want at least 1", c.UserNSRanges)
	}
	base, n := uint64(cmp.Or(c.UserNSBase, DefaultUserNSBase)), uint64(cmp.Or(c.UserNSRanges, DefaultUserNSRanges))
	if base < UserNSSize {
		return fmt.Errorf("user namespace base %d: below %d, the ids a container maps itself", base, UserNSSize)
	}
	if base+n*UserNSSize > 1<<32-1 {
		return fmt.Errorf("user namespace base %d with %d ranges of %d: past the last uid %d", base, n, UserNSSize, uint64(1<<32-2))
	}
	return nil
}

// Runtime starts containers. It is safe for concurrent use.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	isolate bool
	cgroups cgroupDriver // nil: no cgroups
	// cgroupPrefix keeps the cgroups of agents sharing a machine apart.
	cgroupPrefix string
	// userns: isolated containers run in user namespaces; else usernsWhy
	// says why not (empty: not asked for, or not isolated).
	userns    bool
	usernsWhy string

	mu        sync.Mutex
	closed    bool
	instances map[*Instance]struct{}
	starter   *starter // started by the first onStarter
	ranges    []bool   // user namespace ranges taken, by index
	// usernsOf holds the user namespace of each range used so far, for
	// the idmapped mounts of the range's next containers.
	usernsOf map[int]*os.File
}

// starter is a goroutine locked to its thread for the runtime's life, which
// starts containers' main processes: their parent-death signal is the
// death of the thread that started them, and this one ends only after
// Close ended them.
type starter struct {
	reqs       chan func()
	stop, done chan struct{}
}

// onStarter runs fn on the starter's thread.
func (r *Runtime) onStarter(fn func()) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("process runtime is closed")
	}
	if r.starter == nil {
		st := &starter{reqs: make(chan func()), stop: make(chan struct{}), done: make(chan struct{})}
		r.starter = st
		go func() {
			defer close(st.done)
			// Never unlocked: the thread ends with the goroutine, after
			// Close, with nothing left for its death to signal.
			runtime.LockOSThread()
			for {
				select {
				case f := <-st.reqs:
					f()
				case <-st.stop:
					return
				}
			}
		}()
	}
	st := r.starter
	r.mu.Unlock()
	ran := make(chan struct{})
	select {
	case st.reqs <- func() { fn(); close(ran) }:
		<-ran
		return nil
	case <-st.stop:
		return errors.New("process runtime is closed")
	}
}

// New creates a Runtime and reports (in its log) which isolation and limits
// this device offers.
func New(cfg Config, log *slog.Logger) (*Runtime, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("process runtime: state dir is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	cfg.UserNSBase = cmp.Or(cfg.UserNSBase, DefaultUserNSBase)
	cfg.UserNSRanges = cmp.Or(cfg.UserNSRanges, DefaultUserNSRanges)
	if cfg.WatchInterval == 0 {
		cfg.WatchInterval = 250 * time.Millisecond
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process runtime: %w", err)
	}
	sum := sha256.Sum256([]byte(cfg.StateDir))
	r := &Runtime{cfg: cfg, log: log, instances: map[*Instance]struct{}{}, cgroupPrefix: hex.EncodeToString(sum[:4]) + "-"}
	r.isolate = !cfg.NoIsolation && canIsolate()
	if r.isolate {
		// Containers of an agent that crashed: their mounts and layers.
		entries, _ := os.ReadDir(cfg.StateDir)
		for _, e := range entries {
			if err := clearStale(filepath.Join(cfg.StateDir, e.Name())); err != nil {
				log.Warn("clear a stale container", "dir", e.Name(), "err", err)
			}
		}
	}
	switch {
	case cfg.UserNS == UserNSOff:
	case !r.isolate && cfg.UserNS == UserNSRequired:
		return nil, errors.New("process runtime: user namespaces are required, but containers are not isolated here (Linux, the agent as root)")
	case r.isolate:
		if err := probeUserNS(cfg.StateDir, cfg.UserNSBase); err != nil {
			if cfg.UserNS == UserNSRequired {
				return nil, fmt.Errorf("process runtime: user namespaces are required: %w", err)
			}
			r.usernsWhy = err.Error()
			log.Warn("native containers run without a user namespace: their root is the device's", "err", err)
		} else {
			r.userns = true
			r.ranges = make([]bool, cfg.UserNSRanges)
		}
	}
	if !cfg.NoCgroups {
		r.cgroups = detectCgroups(log)
	}
	cg := "none (memory watchdog)"
	if r.cgroups != nil {
		cg = r.cgroups.name()
	}
	log.Info("process runtime ready", "isolation", r.isolate, "userNamespaces", r.userns, "cgroups", cg)
	return r, nil
}

// Isolated reports whether containers run in their own namespaces and root.
func (r *Runtime) Isolated() bool { return r.isolate }

// UserNamespaces reports whether isolated containers run in user
// namespaces, their root an unprivileged user of the device, and if not,
// why not: the kernel's refusal, or "" when they were turned off or
// containers are not isolated at all.
func (r *Runtime) UserNamespaces() (bool, string) { return r.userns, r.usernsWhy }

// takeRange reserves a user namespace range and returns its first host id.
func (r *Runtime) takeRange() (uint32, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, taken := range r.ranges {
		if !taken {
			r.ranges[k] = true
			return r.cfg.UserNSBase + uint32(k)*UserNSSize, k, nil
		}
	}
	return 0, -1, fmt.Errorf("all %d user namespace ranges are taken by running containers", len(r.ranges))
}

// releaseRange gives back what takeRange reserved.
func (r *Runtime) releaseRange(k int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k >= 0 && k < len(r.ranges) {
		r.ranges[k] = false
	}
}

// Close kills every running container and waits for them to end.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	var running []*Instance
	for i := range r.instances {
		running = append(running, i)
	}
	r.mu.Unlock()
	for _, i := range running {
		i.Stop(0)
	}
	r.mu.Lock()
	st := r.starter
	for k, f := range r.usernsOf {
		f.Close()
		delete(r.usernsOf, k)
	}
	r.mu.Unlock()
	if st != nil {
		select {
		case <-st.stop:
		default:
			close(st.stop)
		}
		<-st.done
	}
	return nil
}

// Start starts a container and returns once its process runs. ctx bounds
// only the start.
func (r *Runtime) Start(ctx context.Context, spec Spec) (*Instance, error) {
	inst, err := r.start(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	return inst, nil
}

func (r *Runtime) start(ctx context.Context, spec Spec) (*Instance, error) {
	if spec.ID == "" || strings.ContainsAny(spec.ID, "/\\") || spec.ID == "." || spec.ID == ".." {
		return nil, fmt.Errorf("bad container id %q", spec.ID)
	}
	if len(spec.Args) == 0 {
		return nil, errors.New("no command: the image has no entrypoint or cmd and the container gives none")
	}
	if fi, err := os.Stat(spec.RootFS); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root filesystem %q: not a directory", spec.RootFS)
	}
	if _, err := Capabilities(spec.Security); err != nil {
		return nil, err
	}
	if u := spec.User; r.userns && u != nil && (u.UID >= UserNSSize || u.GID >= UserNSSize) {
		return nil, fmt.Errorf("user %d:%d: a container's user namespace maps ids 0 to %d only", u.UID, u.GID, UserNSSize-1)
	}
	if spec.Security.ReadOnlyRootFS && !r.isolate {
		return nil, errors.New("readOnlyRootFilesystem: this device runs native containers without isolation (the agent is not root on Linux), so their root file system cannot be made read-only")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inst := &Instance{
		r:        r,
		spec:     spec,
		done:     make(chan struct{}),
		stopCh:   make(chan struct{}),
		dir:      filepath.Join(r.cfg.StateDir, spec.ID),
		rangeIdx: -1,
	}
	if err := inst.prepare(); err != nil {
		inst.cleanup()
		return nil, err
	}
	stdin, stdout, stderr := spec.Stdin, spec.Stdout, spec.Stderr
	if spec.TTY {
		term, err := newTerminal()
		if err != nil {
			inst.cleanup()
			return nil, err
		}
		if term != nil {
			inst.term = term
			stdin, stdout, stderr = term.slave, term.slave, term.slave
			defer func() {
				if inst.cmd == nil { // not started
					term.master.Close()
					term.slave.Close()
				}
			}()
		}
	}
	cmd, err := inst.command(spec.Args, stdin, stdout, stderr, true)
	if err != nil {
		inst.cleanup()
		return nil, err
	}
	if inst.term != nil {
		onTerminal(cmd)
	}
	if err := inst.attachCgroup(cmd); err != nil {
		inst.cleanup()
		return nil, err
	}
	if err := inst.startCmd(cmd, true); err != nil {
		inst.cleanup()
		return nil, err
	}
	inst.cmd = cmd
	inst.started = time.Now()
	inst.afterStart()
	if inst.term != nil {
		inst.term.run(spec.Stdin, spec.Stdout)
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		inst.kill()
	} else {
		r.instances[inst] = struct{}{}
		r.mu.Unlock()
	}
	go inst.wait()
	if r.cgroups == nil && spec.MemoryLimitBytes > 0 {
		go inst.watchMemory()
	}
	return inst, nil
}

// Instance is one running container. Its methods are safe for concurrent use.
type Instance struct {
	r      *Runtime
	spec   Spec
	dir    string // scratch directory
	root   string // the container's root: merged overlay (isolated) or RootFS
	mounts []string
	cg     cgroup
	ns     []*os.File // the main process's mount, PID (isolated, Linux) and user namespaces
	// idBase is the host id of the container's uid 0 in its user
	// namespace (range rangeIdx); 0: no user namespace.
	idBase   uint32
	rangeIdx int
	cmd      *exec.Cmd
	started  time.Time
	term     *terminal // with Spec.TTY

	stopOnce sync.Once
	stopCh   chan struct{}
	mu       sync.Mutex
	oom      bool // the watchdog killed it
	stopped  bool

	done   chan struct{}
	result Result
}

// Done is closed when the container has ended.
func (i *Instance) Done() <-chan struct{} { return i.done }

// Result returns how the container ended; valid once Done is closed.
func (i *Instance) Result() Result { return i.result }

// Pid is the container's main process id (on the host).
func (i *Instance) Pid() int { return i.cmd.Process.Pid }

// Stop sends SIGTERM, waits up to grace, then SIGKILL, and returns once the
// container has ended. It may be called more than once and concurrently.
func (i *Instance) Stop(grace time.Duration) {
	i.mu.Lock()
	i.stopped = true
	i.mu.Unlock()
	i.stopOnce.Do(func() { close(i.stopCh) })
	if grace > 0 {
		i.signalTerm()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-i.done:
			return
		case <-t.C:
			i.r.log.Warn("container did not stop within its grace period", "container", i.spec.ID, "grace", grace)
		}
	}
	i.kill()
	<-i.done
}

// Exec runs cmd in the container's environment (its root, env, working dir
// and volumes; isolated, its mount and PID namespaces), confined as the
// container is, and returns its exit code. An error
// means it could not be run at all.
func (i *Instance) Exec(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	select {
	case <-i.done:
		return -1, errors.New("container is not running")
	default:
	}
	cmd, err := i.command(argv, stdin, stdout, stderr, false)
	if err != nil {
		return -1, err
	}
	if err := i.attachCgroup(cmd); err != nil {
		return -1, err
	}
	if err := i.startCmd(cmd, false); err != nil {
		return -1, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	i.afterStartPid(cmd.Process.Pid)
	waitDone := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			killGroup(cmd.Process.Pid)
		case <-waitDone:
		}
	}()
	err = cmd.Wait()
	close(waitDone)
	return commandResult(err)
}

// commandResult turns what exec.Cmd.Wait returned into an exec's exit code:
// the command's own (128+n if signal n ended it), or -1 with the error that
// kept it from running or being waited for.
func commandResult(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitCode(ee.ProcessState), nil
	}
	return -1, err
}

// wait reaps the process and records the result.
func (i *Instance) wait() {
	err := i.cmd.Wait()
	// The main process ended: end whatever it left behind.
	killGroup(i.cmd.Process.Pid)
	res := Result{ExitCode: 0, Reason: reasons.Completed}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			res.ExitCode = exitCode(ee.ProcessState)
			res.Reason = reasons.Error
			if sig := signalOf(ee.ProcessState); sig != "" {
				res.Message = "killed by " + sig
			}
		} else {
			res = Result{ExitCode: 128, Reason: reasons.Error, Message: err.Error()}
		}
	}
	i.mu.Lock()
	oom := i.oom
	i.mu.Unlock()
	if !oom && i.cg != nil {
		oom = i.cg.oomKilled()
	}
	if oom && res.ExitCode != 0 {
		res = Result{ExitCode: 137, Reason: reasons.OOMKilled, Message: fmt.Sprintf("memory limit of %d bytes reached", i.spec.MemoryLimitBytes)}
	}
	if i.term != nil {
		i.term.drain()
	}
	i.cleanup()
	i.r.mu.Lock()
	delete(i.r.instances, i)
	i.r.mu.Unlock()
	i.result = res
	close(i.done)
}

// watchMemory kills the container when its resident memory goes over the
// limit; it is the limit of devices without a memory cgroup.
func (i *Instance) watchMemory() {
	t := time.NewTicker(i.r.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-i.done:
			return
		case <-t.C:
		}
		rss := treeRSS(i.cmd.Process.Pid)
		if rss > i.spec.MemoryLimitBytes {
			i.mu.Lock()
			i.oom = true
			i.mu.Unlock()
			i.r.log.Warn("container over its memory limit: killed", "container", i.spec.ID, "rss", rss, "limit", i.spec.MemoryLimitBytes)
			i.kill()
			return
		}
	}
}

// MemoryBytes is the container's current memory use (cgroup, else the RSS of
// its processes).
func (i *Instance) MemoryBytes() int64 {
	if i.cg != nil {
		if n, ok := i.cg.memory(); ok {
			return n
		}
	}
	return treeRSS(i.cmd.Process.Pid)
}

// lookPath finds argv0 inside root, as the shell would inside the container.
func lookPath(root, argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		p := argv0
		if !path.IsAbs(p) {
			return "", fmt.Errorf("executable %q is not an absolute path", argv0)
		}
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			return "", fmt.Errorf("executable %s: not found in the image: %w", argv0, fs.ErrNotExist)
		}
		return p, nil
	}
	pathVar := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		p := path.Join("/", dir, argv0)
		if fi, err := os.Stat(filepath.Join(root, p)); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q: not found in the image's PATH %s: %w", argv0, pathVar, fs.ErrNotExist)
}

// volumeEnv names a volume's environment variable: EDGEFABRIC_VOLUME_ and
// the name upper-cased with non-alphanumerics as underscores.
func volumeEnv(name string) string {
	b := []byte(strings.ToUpper(name))
	for k, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[k] = '_'
		}
	}
	return "EDGEFABRIC_VOLUME_" + string(b)
}

// cgroupDriver creates cgroups of one kind (v2 or v1).
type cgroupDriver interface {
	name() string
	// create makes the cgroup of container id with its limits (0: none).
	create(id string, memoryBytes, cpuMillis int64) (cgroup, error)
}

// cgroup is one container's cgroup.
type cgroup interface {
	// fd is a directory descriptor to start processes in (cgroup v2); false
	// means processes are added after they start.
	fd() (int, bool)
	addPID(pid int) error
	// oomKilled reports whether the kernel killed a process of the cgroup
	// for going over its memory limit.
	oomKilled() bool
	memory() (int64, bool)
	remove()
}
