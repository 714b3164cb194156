package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// exitKilled is the exit code of killed modules, as for SIGKILL (128+9).
const exitKilled = 137

// maxMessage bounds Result.Message, like a termination message.
const maxMessage = 4096

const pageSize = 64 * 1024

// The bounds of an instance's sleep when it has sockets (see Instance.polls).
const (
	pollMin = 50 * time.Microsecond
	pollMax = 2 * time.Millisecond
)

// Result is how an instance ended.
type Result struct {
	// ExitCode is the status passed to proc_exit, cut to its low 8 bits as
	// a POSIX wait status keeps it (exit(-1) is 255, exit(256) is 0), 0
	// when _start returned, 1 after a trap and 137 when OOMKilled or
	// Killed.
	ExitCode int
	// Reason is reasons.Completed (exited with status 0), reasons.Error
	// (exited with another status, or trapped), reasons.OOMKilled (needed
	// more memory than Spec.MemoryLimitBytes) or reasons.Killed (ended by
	// Stop).
	Reason string
	// Message explains an OOMKilled, Killed or trapped instance; it is
	// empty after a plain exit.
	Message string
}

// Instance is one running module. Its methods are safe for concurrent use.
type Instance struct {
	runtime    *Runtime
	modulePath string
	stdin      io.Reader
	mod        api.Module
	memory     *limitedMemory
	cpu        threadCPU
	cancel     context.CancelFunc

	stopOnce sync.Once
	stopped  atomic.Bool
	stopCh   chan struct{} // closed by Stop, ends sleeps

	// With preopened sockets, wazero's poll_oneoff reports a socket ready
	// at once and then sleeps for the whole timeout of the poll (forever
	// for a server waiting for a connection). The runtime's poll_oneoff
	// waits on the sockets for real where it can (see pollOneoff); for
	// the polls it leaves to wazero, sleep caps each sleep,
	// from pollMin doubling up to pollMax while the module stays idle, so
	// that it looks at its sockets again soon; pollStep and lastWake hold
	// that back-off (touched by the instance's goroutine only).
	polls    bool
	pollStep time.Duration
	lastWake time.Time

	// poller, on an OS that has one, lets poll_oneoff wait on the host
	// sockets of an instance with Listeners (see pollOneoff); files,
	// filesFailed and pollSubs serve it (touched by the instance's
	// goroutine only). pollWaits counts the polls it waited for,
	// pollFallbacks those left to wazero.
	poller        poller
	files         *moduleFiles
	filesFailed   bool
	pollSubs      []pollSub
	pollWaits     atomic.Int64
	pollFallbacks atomic.Int64

	// The instance's sockets, which Stop closes so that a host call
	// blocked on one (the accept or read of a module whose sockets are
	// blocking, as Rust's std::net are) returns (see unblockSockets).
	// listeners are the preopened listening sockets, set before the
	// instance's goroutine starts; conns are the connections it accepted
	// and did not close (see sockAccept), guarded by sockMu.
	listeners []*net.TCPListener
	sockMu    sync.Mutex
	conns     map[*net.TCPConn]struct{}

	done   chan struct{}
	result Result // set before done is closed
}

// Done is closed when the instance has ended.
func (i *Instance) Done() <-chan struct{} { return i.done }

// Result returns how the instance ended. It is valid once Done is closed.
func (i *Instance) Result() Result { return i.result }

// Stop ends the instance and returns once its goroutine has ended; the
// Result is then Killed with exit code 137, unless the module had already
// exited. WASI preview 1 has no signals, so the module is cancelled at once:
// it ends at its next function call or loop iteration, and a sleep is cut
// short. Its sockets are closed at once too, which ends an accept, read or
// write blocked on one. Only a host call that blocks outside wazero's
// control can delay that, such as a read of a blocking Spec.Stdin: after
// grace, Stop closes Stdin if it is an io.Closer, then keeps waiting. Stop
// may be called more than once and concurrently.
func (i *Instance) Stop(grace time.Duration) {
	i.stopOnce.Do(func() {
		i.stopped.Store(true)
		close(i.stopCh)
		if i.poller != nil {
			i.poller.wake()
		}
		i.cancel()
		i.unblockSockets()
	})
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-i.done:
			return
		case <-t.C:
			i.runtime.log.Warn("module did not stop within its grace period", "module", i.modulePath, "grace", grace)
		}
	}
	select {
	case <-i.done:
		return
	default:
	}
	// Closing the module from here would race with its goroutine inside
	// wazero; unblocking the call it is stuck in is what can be done.
	if c, ok := i.stdin.(io.Closer); ok {
		_ = c.Close()
	}
	<-i.done
}

// instantiate instantiates the module without running it.
func (i *Instance) instantiate(ctx context.Context, rt wazero.Runtime, mod wazero.CompiledModule, cfg wazero.ModuleConfig) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("instantiate: panic: %v", p)
		}
	}()
	m, err := rt.InstantiateModule(ctx, mod, cfg)
	if err != nil {
		return fmt.Errorf("instantiate: %w", err)
	}
	i.mod = m
	return nil
}

// Usage is what a running instance uses.
type Usage struct {
	// CPUNanos is the CPU time the instance's goroutine has used, measured
	// as the CPU time of the OS thread it is locked to; CPUMeasured is false
	// where the OS does not let that be read (then CPUNanos is 0).
	CPUNanos    uint64
	CPUMeasured bool
	// MemoryBytes is the size of the module's linear memory.
	MemoryBytes uint64
}

// Usage returns what the instance uses now (or used, once it has ended).
func (i *Instance) Usage() Usage {
	u := Usage{MemoryBytes: i.memory.size.Load()}
	u.CPUNanos, u.CPUMeasured = i.cpu.used()
	return u
}

// run calls _start and records the result; it is the instance's goroutine.
func (i *Instance) run(ctx context.Context) {
	// The goroutine keeps one OS thread while it runs the module, so that
	// the thread's CPU time is the module's (see threadCPU); it leaves it
	// while it waits (offThread).
	runtime.LockOSThread()
	i.cpu.start()
	err := i.call(ctx)
	i.cpu.stop()
	runtime.UnlockOSThread()
	res := i.classify(err)
	_ = i.mod.Close(context.Background())
	closeResources(i.mod) // if the module was marked closed on Stop
	i.closeConns()
	i.runtime.mu.Lock()
	delete(i.runtime.instances, i)
	i.runtime.mu.Unlock()
	i.finish(res)
}

func (i *Instance) call(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	_, err = i.mod.ExportedFunction("_start").Call(ctx)
	return err
}

// finish publishes the result; the module must be closed already.
func (i *Instance) finish(res Result) {
	i.closePoller()
	i.result = res
	close(i.done)
	i.cancel()
}

// closePoller releases the instance's poller, if it has one.
func (i *Instance) closePoller() {
	if i.poller == nil {
		return
	}
	if err := i.poller.close(); err != nil {
		i.runtime.log.Debug("close of module poller failed", "module", i.modulePath, "err", err)
	}
}

// classify turns the error _start returned into a Result.
func (i *Instance) classify(err error) Result {
	oom := i.memory.hit.Load()
	oomResult := Result{
		ExitCode: exitKilled,
		Reason:   reasons.OOMKilled,
	}
	if i.memory.limit > 0 {
		oomResult.Message = fmt.Sprintf("linear memory limit of %d bytes reached", i.memory.limit)
	}
	killed := Result{ExitCode: exitKilled, Reason: reasons.Killed, Message: "stopped"}
	stopped := i.stopped.Load()

	if err == nil {
		return Result{ExitCode: 0, Reason: reasons.Completed}
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		// Only Stop cancels the instance's context: without it, wazero's
		// ExitCodeContextCanceled (0xffffffff) is the module's own
		// proc_exit(-1), which Rust's process::exit(-1) and Go's
		// os.Exit(-1) make.
		code := exit.ExitCode()
		switch {
		case code == 0:
			return Result{ExitCode: 0, Reason: reasons.Completed}
		case stopped:
			// Cancelled, or failed once Stop closed its sockets.
			return killed
		case oom:
			return oomResult
		case code&0xff == 0:
			return Result{ExitCode: 0, Reason: reasons.Completed}
		default:
			return Result{ExitCode: int(code & 0xff), Reason: reasons.Error}
		}
	}
	switch {
	case stopped:
		return killed
	case oom:
		return oomResult
	}
	msg := err.Error()
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	return Result{ExitCode: 1, Reason: reasons.Error, Message: msg}
}

// sleep is the module's nanosleep: real time, but interrupted by Stop so that
// a sleeping module can be cancelled.
func (i *Instance) sleep(ns int64) {
	if ns <= 0 {
		return
	}
	d := time.Duration(ns)
	if i.polls {
		if time.Since(i.lastWake) > pollMin || i.pollStep == 0 {
			i.pollStep = pollMin // it did some work since: look again soon
		} else {
			i.pollStep = min(2*i.pollStep, pollMax)
		}
		d = min(d, i.pollStep)
		defer func() { i.lastWake = time.Now() }()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	stopped := false
	offThread(&i.cpu, func() {
		select {
		case <-t.C:
		case <-i.stopCh:
			stopped = true
		}
	})
	if stopped {
		// Stop: end the module here, as proc_exit does. Returning would
		// let it run on until wazero's termination check, which comes
		// only every 2^18 loop iterations (hack/wazero): a Go module's
		// scheduler polls again at once, and a stopped hello spent 4 ms
		// of CPU spinning so, six times what starting it took.
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

// offThread runs wait, which blocks, with the instance's goroutine unlocked
// from its OS thread, and locks it to one again after. A module that sleeps
// (most of them, most of the time) then holds no thread: without this, every
// instance kept one parked thread of its own, a new one made for each start,
// and each wake-up handed the thread's P over twice.
func offThread(cpu *threadCPU, wait func()) {
	cpu.pause()
	runtime.UnlockOSThread()
	defer func() {
		runtime.LockOSThread()
		cpu.resume()
	}()
	wait()
}
