// Package wasm runs WebAssembly command modules (WASI preview 1) with wazero,
// as the agent's default lite-container runtime.
//
// A Runtime is created once per agent and shared by all containers; it
// compiles each module once (keyed by the digest of its bytes) and keeps the
// compiled code in an optional on-disk cache so that an agent restart does not
// recompile. Start runs one instance of a module in its own goroutine; the
// caller waits on Instance.Done and reads Instance.Result, or ends it with
// Instance.Stop. A module can never crash the agent: traps, panics in host
// calls and exhausted memory all end as a Result.
//
// WASI is wazero's, but for poll_oneoff, sock_accept, fd_close and
// fd_prestat_get, which the runtime wraps or replaces for modules with
// Spec.Listeners: on Linux a poll of sockets waits on their host file
// descriptors instead of reporting them ready at once (poll.go), a
// connection the module closes is closed (conns.go), and a preopened socket
// is not described as a preopened directory (prestat.go). Stop closes the
// sockets of an instance, so that a call blocked on one returns. A module's
// standard input can be polled for real (stdin.go): wazero takes a plain
// reader for always ready.
package wasm

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sock"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// Config configures a Runtime.
type Config struct {
	// CacheDir keeps compiled modules on disk across Runtimes and agent
	// restarts (created if missing). Empty keeps them in memory only.
	CacheDir string
	// DefaultMemoryLimitBytes caps the linear memory of a module whose Spec
	// sets no MemoryLimitBytes, so that a module that grows its memory
	// without end is OOMKilled rather than the agent, by the kernel. Zero
	// means no default: up to the 4 GiB of a 32-bit module. The agent sets a
	// share of the device's memory (agent.Config.WASMDefaultMemoryPercent).
	DefaultMemoryLimitBytes int64
}

// Runtime compiles and runs modules. It is safe for concurrent use.
type Runtime struct {
	log      *slog.Logger
	cache    wazero.CompilationCache
	cacheDir string
	rt       wazero.Runtime
	// defaultLimit is Config.DefaultMemoryLimitBytes.
	defaultLimit int64

	mu        sync.Mutex
	closed    bool
	compiled  map[string]*compiled  // by sha256 hex of the module bytes
	digests   map[string]fileDigest // by module path
	instances map[*Instance]struct{}
}

// fileDigest is the digest of a module file as it was when it was read: a
// file whose size and modification time are unchanged is not read again.
type fileDigest struct {
	size    int64
	modTime time.Time
	key     string // sha256 hex
}

// compiled is a module compiled once; done is closed when mod or err is set.
type compiled struct {
	done  chan struct{}
	mod   wazero.CompiledModule
	image *dataImage // the module's data, taken out of mod; nil if it is in mod
	err   error
}

// New creates a Runtime with WASI preview 1 available to modules.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Runtime, error) {
	if cfg.DefaultMemoryLimitBytes < 0 {
		return nil, fmt.Errorf("negative default memory limit %d", cfg.DefaultMemoryLimitBytes)
	}
	cache := wazero.NewCompilationCache()
	if cfg.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("open compilation cache %s: %w", cfg.CacheDir, err)
		}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true))
	if err := wasiHostModule(ctx, rt); err != nil {
		return nil, errors.Join(err, rt.Close(ctx), cache.Close(ctx))
	}
	return &Runtime{
		log:          log,
		cache:        cache,
		cacheDir:     cfg.CacheDir,
		rt:           rt,
		defaultLimit: cfg.DefaultMemoryLimitBytes,
		compiled:     make(map[string]*compiled),
		digests:      make(map[string]fileDigest),
		instances:    make(map[*Instance]struct{}),
	}, nil
}

// Close stops every running instance (as Stop with no grace period) and
// releases the runtime. Start fails afterwards.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	running := slices.Collect(maps.Keys(r.instances))
	compiled := slices.Collect(maps.Values(r.compiled))
	r.mu.Unlock()

	for _, inst := range running {
		inst.Stop(0)
	}
	var errs []error
	for _, c := range compiled {
		<-c.done
		if c.mod != nil {
			errs = append(errs, c.mod.Close(ctx), c.image.close())
		}
	}
	errs = append(errs, r.rt.Close(ctx), r.cache.Close(ctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close wasm runtime: %w", err)
	}
	return nil
}

// Spec describes one run of a module.
type Spec struct {
	// ModulePath is the file holding the module's bytes.
	ModulePath string
	// Args is the full argv; Args[0] is the program name. Empty means the
	// base name of ModulePath alone.
	Args []string
	// Env holds "KEY=VALUE" entries; nil means an empty environment.
	Env []string
	// MemoryLimitBytes caps linear memory at floor(MemoryLimitBytes/64KiB)
	// pages; a module that needs more ends OOMKilled. 0 leaves only the
	// module's own maximum.
	MemoryLimitBytes int64
	// CPULimitMillis holds the module to that many thousandths of a CPU,
	// over periods of 100 ms (see cpuThrottle); 0 (or 1000 and more: a
	// module runs on one thread) means no limit.
	CPULimitMillis int64
	// Stdin is the module's standard input; nil reads as empty. Stop cannot
	// interrupt a module blocked reading it, so a blocking reader should be
	// closed by the caller to end the read. A module that polls it waits
	// for data (see pollStdin).
	Stdin io.Reader
	// Stdout and Stderr receive the module's output; nil discards it. They
	// are written from the instance's goroutine.
	Stdout, Stderr io.Writer
	// Dirs maps guest paths to host directories preopened for the module;
	// empty gives it no filesystem.
	Dirs map[string]string
	// ReadOnlyDirs maps guest paths to host directories preopened read-only.
	ReadOnlyDirs map[string]string
	// Listeners are TCP addresses ("host:port", host empty for every
	// interface) the runtime listens on and hands to the module as
	// preopened sockets, before the preopened directories (Dirs, then
	// ReadOnlyDirs): the first is file descriptor 3 (in Go, after
	// syscall.SetNonblock(3, true): net.FileListener(os.NewFile(3, ""))).
	// Start fails if one cannot be listened on.
	Listeners []string
}

// Start compiles the module (once per module digest for the Runtime's
// lifetime) and instantiates it, then runs its _start function in a new
// goroutine and returns. It fails if the module cannot be read, compiled or
// instantiated, or is not a WASI command. ctx bounds only that work: the
// running instance lives until it exits or is stopped.
func (r *Runtime) Start(ctx context.Context, spec Spec) (*Instance, error) {
	inst, err := r.start(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.ModulePath, err)
	}
	return inst, nil
}

func (r *Runtime) start(ctx context.Context, spec Spec) (*Instance, error) {
	if spec.MemoryLimitBytes < 0 {
		return nil, fmt.Errorf("negative memory limit %d", spec.MemoryLimitBytes)
	}
	if spec.CPULimitMillis < 0 {
		return nil, fmt.Errorf("negative CPU limit %d", spec.CPULimitMillis)
	}
	mcfg, err := moduleConfig(spec)
	if err != nil {
		return nil, err
	}
	c, err := r.compile(ctx, spec.ModulePath)
	if err != nil {
		return nil, err
	}
	mod := c.mod
	if _, ok := mod.ExportedFunctions()["_start"]; !ok {
		return nil, errors.New("module exports no _start function: not a WASI command")
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	inst := &Instance{
		runtime:    r,
		modulePath: spec.ModulePath,
		stdin:      spec.Stdin,
		cancel:     cancel,
		stopCh:     make(chan struct{}),
		polls:      len(spec.Listeners) > 0,
		done:       make(chan struct{}),
	}
	inst.memory = &limitedMemory{image: c.image}
	if limit := cmp.Or(spec.MemoryLimitBytes, r.defaultLimit); limit > 0 {
		pages := uint64(limit) / pageSize
		inst.memory.limit = pages * pageSize
	}
	runCtx = experimental.WithMemoryAllocator(runCtx, experimental.MemoryAllocatorFunc(inst.memory.allocate))
	if len(spec.Listeners) > 0 {
		sc := sock.NewConfig()
		for _, addr := range spec.Listeners {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("listener %q: %w", addr, err)
			}
			p, err := strconv.Atoi(port)
			if err != nil || p <= 0 || p > 65535 {
				cancel()
				return nil, fmt.Errorf("listener %q: bad port", addr)
			}
			sc = sc.WithTCPListener(host, p)
		}
		runCtx = sock.WithConfig(runCtx, sc)
		// Real readiness of the sockets in poll_oneoff (see pollOneoff).
		p, err := newPoller()
		if err != nil {
			r.log.Warn("module sockets polled without waiting", "module", spec.ModulePath, "err", err)
		} else if p != nil {
			inst.poller = p
		}
		runCtx = context.WithValue(runCtx, instanceKey{}, inst)
	}
	mcfg = mcfg.WithNanosleep(inst.sleep)
	if spec.Stdin != nil {
		mcfg = mcfg.WithStdin(newPollStdin(spec.Stdin, inst.stopCh))
	}
	if t := newCPUThrottle(spec.CPULimitMillis, &inst.cpu, inst.stopCh); t != nil {
		runCtx = experimental.WithYieldHook(runCtx, t.wait)
	}

	if err := inst.instantiate(runCtx, r.rt, mod, mcfg); err != nil {
		cancel()
		inst.closePoller()
		return nil, err
	}
	if len(spec.Listeners) > 0 {
		inst.findListeners(inst.mod, len(spec.Dirs)+len(spec.ReadOnlyDirs)+len(spec.Listeners))
	}
	if inst.memory.startOver {
		// The module's initial memory is over the limit: it cannot run.
		_ = inst.mod.Close(ctx)
		inst.finish(Result{
			ExitCode: exitKilled,
			Reason:   reasons.OOMKilled,
			Message:  fmt.Sprintf("module needs %d bytes of linear memory at start, over the limit of %d", inst.memory.startSize, inst.memory.limit),
		})
		return inst, nil
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = inst.mod.Close(ctx)
		inst.finish(Result{ExitCode: exitKilled, Reason: reasons.Killed, Message: "runtime closed"})
		return nil, errors.New("runtime is closed")
	}
	r.instances[inst] = struct{}{}
	r.mu.Unlock()

	go inst.run(runCtx)
	return inst, nil
}

func moduleConfig(spec Spec) (wazero.ModuleConfig, error) {
	args := spec.Args
	if len(args) == 0 {
		args = []string{filepath.Base(spec.ModulePath)}
	}
	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: a module may run many times at once
		WithStartFunctions().
		WithArgs(args...).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	for _, kv := range spec.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("environment entry %q is not KEY=VALUE", kv)
		}
		cfg = cfg.WithEnv(k, v)
	}
	if spec.Stdout != nil {
		cfg = cfg.WithStdout(spec.Stdout)
	}
	if spec.Stderr != nil {
		cfg = cfg.WithStderr(spec.Stderr)
	}
	if len(spec.Dirs) > 0 || len(spec.ReadOnlyDirs) > 0 {
		fs := wazero.NewFSConfig()
		for k, dirs := range []map[string]string{spec.Dirs, spec.ReadOnlyDirs} {
			readOnly := k == 1
			for _, guest := range slices.Sorted(maps.Keys(dirs)) {
				host := dirs[guest]
				if info, err := os.Stat(host); err != nil {
					return nil, fmt.Errorf("mount %s: %w", guest, err)
				} else if !info.IsDir() {
					return nil, fmt.Errorf("mount %s: %s is not a directory", guest, host)
				}
				if readOnly {
					fs = fs.WithReadOnlyDirMount(host, guest)
				} else {
					fs = fs.WithDirMount(host, guest)
				}
			}
		}
		cfg = cfg.WithFSConfig(fs)
	}
	return cfg, nil
}

// compile returns the compiled module for the file at path, compiling it
// unless a module with the same digest was compiled before. A file read
// before is not read and hashed again while its size and modification time
// stay the same (the image store's module files never change): a Go module
// is megabytes, and reading it on every start costs more CPU than starting
// it, and as much garbage as its linear memory.
func (r *Runtime) compile(ctx context.Context, path string) (*compiled, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	d, ok := r.digests[path]
	var c *compiled
	if ok && d.size == fi.Size() && d.modTime.Equal(fi.ModTime()) {
		c = r.compiled[d.key]
	}
	r.mu.Unlock()
	if c != nil {
		select {
		case <-c.done:
			if c.err == nil {
				return c, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	key := hex.EncodeToString(sum[:])

	r.mu.Lock()
	r.digests[path] = fileDigest{size: fi.Size(), modTime: fi.ModTime(), key: key}
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("runtime is closed")
	}
	c, ok = r.compiled[key]
	if !ok {
		c = &compiled{done: make(chan struct{})}
		r.compiled[key] = c
	}
	r.mu.Unlock()

	if ok {
		select {
		case <-c.done:
			if c.err != nil {
				return nil, c.err
			}
			return c, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	start := time.Now()
	c.mod, c.image, c.err = r.compileBytes(ctx, b, key)
	if c.err != nil {
		c.err = fmt.Errorf("compile: %w", c.err)
		r.mu.Lock()
		delete(r.compiled, key) // let a later Start try again
		r.mu.Unlock()
	} else {
		r.log.Debug("module compiled", "digest", "sha256:"+key, "duration", time.Since(start))
	}
	close(c.done)
	if c.err == nil {
		// Compiling allocates tens of megabytes that are garbage once it is
		// done. An agent that then sits idle allocates too little to run
		// the collector for minutes, and keeps that memory until it does:
		// collect it now and give it back to the OS. Compiling is rare
		// (once per module and agent, thanks to the cache on disk).
		debug.FreeOSMemory()
	}
	if c.err != nil {
		return nil, c.err
	}
	return c, nil
}

// compileBytes compiles a module, with its data taken out into an image
// where that can be done (see splitDataImage), else with its data segments
// joined (see mergeDataSegments). With a cache directory, the image is kept
// there as a file, which instances map rather than copy.
func (r *Runtime) compileBytes(ctx context.Context, b []byte, key string) (wazero.CompiledModule, *dataImage, error) {
	stripped, img, ok := splitDataImage(b)
	if !ok {
		mod, err := r.compileMapped(ctx, mergeDataSegments(b))
		return mod, nil, err
	}
	if r.cacheDir != "" {
		if err := img.persist(r.cacheDir, "data-"+key+".img"); err != nil {
			r.log.Warn("data image not kept on disk; instances copy it", "digest", "sha256:"+key, "err", err)
		}
	}
	mod, err := r.compileMapped(ctx, stripped)
	if err != nil {
		_ = img.close()
		return nil, nil, err
	}
	return mod, img, nil
}

// compileMapped compiles a module so that its native code is mapped from the
// compilation cache on disk where there is one. wazero (patched, see
// hack/wazero) maps code it loads from a cache file; code it has just
// compiled is anonymous memory, resident for as long as the module lives,
// though an idle module runs little of it. So a module compiled afresh, which
// adds a file to the cache, is compiled again at once: that second time
// decodes the module and maps the file, and the kernel can drop the code's
// pages that nothing runs.
func (r *Runtime) compileMapped(ctx context.Context, b []byte) (wazero.CompiledModule, error) {
	before := countFiles(r.cacheDir)
	mod, err := r.rt.CompileModule(ctx, b)
	if err != nil || r.cacheDir == "" || countFiles(r.cacheDir) == before {
		return mod, err
	}
	if err := mod.Close(ctx); err != nil {
		return nil, fmt.Errorf("close module compiled afresh: %w", err)
	}
	return r.rt.CompileModule(ctx, b)
}

// countFiles counts the files under dir (0 for ""): the compilation cache
// keeps one file per compiled module.
func countFiles(dir string) int {
	if dir == "" {
		return 0
	}
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
