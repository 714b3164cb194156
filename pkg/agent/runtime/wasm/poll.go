package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// poll_oneoff.
//
// wazero's poll_oneoff reports every socket ready at once (it cannot wait on
// one), so a module serving from a preopened socket — Go's wasip1 netpoller
// above all — spins: it wakes, tries each socket, gets EAGAIN and polls
// again, hundreds of times a second when idle and for hundreds of µs of CPU
// per request under load. The runtime replaces poll_oneoff with pollOneoff,
// which, for an instance with sockets on an OS where a poller exists, waits
// on the sockets' host file descriptors for real, together with the clock
// subscriptions and the instance's Stop. Any poll it cannot serve that way
// (a subscription on a file that is not a socket, an absolute clock, memory
// out of range) goes to wazero's own poll_oneoff, as before.

// WASI preview 1 layout of subscriptions (48 bytes) and events (32 bytes).
const (
	subscriptionSize = 48
	eventSize        = 32

	eventTypeClock   = 0
	eventTypeFdRead  = 1
	eventTypeFdWrite = 2

	errnoBadf  = 8
	errnoFault = 21

	eventFlagHangup = 1
)

var le = binary.LittleEndian

// instanceKey is the context key under which an instance's run context
// carries the *Instance, for the host functions it calls.
type instanceKey struct{}

// pollSub is one socket subscription of a poll: the host file descriptor to
// wait on and what for; ready and hangup are set by a poller's wait.
type pollSub struct {
	index  uint32 // of the subscription in the guest's array
	host   int
	write  bool
	ready  bool
	hangup bool
	badFD  bool
}

// poller waits on host sockets for an instance. Its wait is called from the
// instance's goroutine only; wake may be called from any goroutine, also
// after close, and makes every wait from then on return at once.
type poller interface {
	// wait blocks until a subscription is ready, timeout passes (negative:
	// never) or wake was called, and reports whether wake was called.
	wait(subs []pollSub, timeout time.Duration) (woken bool, err error)
	wake()
	close() error
}

// wasiHostModule instantiates WASI preview 1 into rt with pollOneoff in
// place of wazero's poll_oneoff, and sockAccept, fdClose and fdPrestatGet
// around its sock_accept, fd_close and fd_prestat_get.
func wasiHostModule(ctx context.Context, rt wazero.Runtime) error {
	// wazero's own functions, to call from ours: the Go functions of the
	// exports of a compiled (never instantiated) copy.
	orig := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(orig)
	compiled, err := orig.Compile(ctx)
	if err != nil {
		return fmt.Errorf("compile WASI: %w", err)
	}
	defs := compiled.ExportedFunctions()
	fn := func(name string) api.GoModuleFunction {
		if def, ok := defs[name]; ok {
			f, _ := def.GoFunction().(api.GoModuleFunction)
			return f
		}
		return nil
	}
	poll, accept, closeFD := fn("poll_oneoff"), fn("sock_accept"), fn("fd_close")
	prestat := fn("fd_prestat_get")
	if err := compiled.Close(ctx); err != nil {
		return fmt.Errorf("close WASI: %w", err)
	}
	if poll == nil || accept == nil || closeFD == nil || prestat == nil {
		return errors.New("WASI has no poll_oneoff, sock_accept, fd_close or fd_prestat_get implemented in Go")
	}

	b := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32 := api.ValueTypeI32
	b.NewFunctionBuilder().
		WithGoModuleFunction(pollOneoff{fallback: poll}, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("in", "out", "nsubscriptions", "result.nevents").
		WithResultNames("errno").
		Export("poll_oneoff")
	b.NewFunctionBuilder().
		WithGoModuleFunction(sockAccept{accept: accept}, []api.ValueType{i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("fd", "flags", "result.fd").
		WithResultNames("errno").
		Export("sock_accept")
	b.NewFunctionBuilder().
		WithGoModuleFunction(fdClose{close: closeFD}, []api.ValueType{i32}, []api.ValueType{i32}).
		WithParameterNames("fd").
		WithResultNames("errno").
		Export("fd_close")
	b.NewFunctionBuilder().
		WithGoModuleFunction(fdPrestatGet{prestat: prestat}, []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("fd", "result.prestat").
		WithResultNames("errno").
		Export("fd_prestat_get")
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate WASI: %w", err)
	}
	return nil
}

// pollOneoff is the runtime's poll_oneoff (see above).
type pollOneoff struct {
	fallback api.GoModuleFunction
}

// Call implements api.GoModuleFunction.
func (p pollOneoff) Call(ctx context.Context, mod api.Module, stack []uint64) {
	inst, _ := ctx.Value(instanceKey{}).(*Instance)
	if inst == nil || inst.poller == nil || inst.filesFailed || !inst.poll(ctx, mod, stack) {
		if inst != nil {
			inst.pollFallbacks.Add(1)
		}
		p.fallback.Call(ctx, mod, stack)
	}
}

// poll serves a poll_oneoff call (params in stack; errno to stack[0]) by
// waiting on the host sockets, or returns false, having written nothing, if
// it cannot.
func (i *Instance) poll(ctx context.Context, mod api.Module, stack []uint64) bool {
	in, out := uint32(stack[0]), uint32(stack[1])
	n, resultNevents := uint32(stack[2]), uint32(stack[3])
	if n == 0 || n > math.MaxUint32/subscriptionSize {
		return false
	}
	mem := mod.Memory()
	if mem == nil {
		return false
	}
	inBuf, ok := mem.Read(in, n*subscriptionSize)
	if !ok {
		return false
	}
	outBuf, ok := mem.Read(out, n*eventSize)
	if !ok {
		return false
	}
	if _, ok := mem.ReadUint32Le(resultNevents); !ok {
		return false
	}
	if i.moduleFiles(mod) == nil {
		return false
	}

	timeout := time.Duration(-1) // none: wait for a socket or Stop
	var clocks []uint32
	subs := i.pollSubs[:0]
	for k := range n {
		s := inBuf[k*subscriptionSize : (k+1)*subscriptionSize]
		switch s[8] {
		case eventTypeClock:
			if flags := le.Uint16(s[40:]); flags != 0 {
				return false // absolute time: wazero answers
			}
			t := time.Duration(math.MaxInt64)
			if ns := le.Uint64(s[24:]); ns < math.MaxInt64 {
				t = time.Duration(ns)
			}
			if timeout < 0 || t < timeout {
				timeout = t
			}
			clocks = append(clocks, k)
		case eventTypeFdRead, eventTypeFdWrite:
			host, ok := i.files.socketFD(int32(le.Uint32(s[16:])))
			if !ok {
				return false // not a socket (or no such fd): wazero answers
			}
			subs = append(subs, pollSub{index: k, host: host, write: s[8] == eventTypeFdWrite})
		default:
			return false
		}
	}
	i.pollSubs = subs

	i.pollWaits.Add(1)
	woken, err := i.poller.wait(subs, timeout)
	if err != nil {
		// The host poll failed (it should not): wazero answers.
		i.runtime.log.Debug("poll of module sockets failed", "module", i.modulePath, "err", err)
		return false
	}
	clear(outBuf)
	nevents := uint32(0)
	event := func(k uint32, typ byte, errno uint16, flags uint16) {
		e := outBuf[nevents*eventSize : (nevents+1)*eventSize]
		copy(e[0:8], inBuf[k*subscriptionSize:k*subscriptionSize+8]) // userdata
		le.PutUint16(e[8:], errno)
		e[10] = typ
		le.PutUint16(e[24:], flags)
		nevents++
	}
	switch {
	case woken:
		// Stop: end the module here, as proc_exit does, rather than
		// let it go on until wazero sees its context cancelled (at
		// its next function call or loop; a module may exit before).
		_ = mod.CloseWithExitCode(ctx, sys.ExitCodeContextCanceled)
		closeResources(mod)
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	default:
		for _, s := range subs {
			switch {
			case s.badFD:
				event(s.index, eventType(s.write), errnoBadf, 0)
			case s.ready && s.hangup:
				event(s.index, eventType(s.write), 0, eventFlagHangup)
			case s.ready:
				event(s.index, eventType(s.write), 0, 0)
			}
		}
		if nevents == 0 {
			for _, k := range clocks {
				event(k, eventTypeClock, 0, 0)
			}
		}
	}
	mem.WriteUint32Le(resultNevents, nevents)
	stack[0] = 0
	return true
}

func eventType(write bool) byte {
	if write {
		return eventTypeFdWrite
	}
	return eventTypeFdRead
}

// closeResources closes the files (sockets above all) of a module that is
// closed already. wazero's goroutine that closes a module when its context
// is cancelled only marks it closed and leaves its files to be closed on the
// module's next call into wazero; Close and CloseWithExitCode return at once
// on a module so marked. FailIfClosed, which *wasm.ModuleInstance exports,
// closes them.
func closeResources(mod api.Module) {
	if m, ok := mod.(interface{ FailIfClosed() error }); ok {
		_ = m.FailIfClosed()
	}
}
