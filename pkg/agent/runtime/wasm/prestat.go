package wasm

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// fd_prestat_get.
//
// wazero v1.12 answers fd_prestat_get for a preopened socket as for a
// preopened directory with an empty name. wasi-libc (the C library of C
// modules and of Rust's std) takes that as a directory whose name, "", is a
// prefix of every path: it wins over a directory mounted at "/" (which
// wasi-libc also reduces to "") and takes every path outside the mounts, and
// opening a file through the socket fails with ENOTDIR. The runtime's
// fd_prestat_get answers EBADF for a socket, as wasmtime does. The sockets
// come after the preopened directories, and EBADF ends wasi-libc's and Go's
// scan of the preopens: they see every directory and no socket.

// errnoBadfCode is WASI's EBADF as a host function returns it.
const errnoBadfCode = uint64(errnoBadf)

// fdPrestatGet is wazero's fd_prestat_get, but for sockets.
type fdPrestatGet struct {
	prestat api.GoModuleFunction
}

// Call implements api.GoModuleFunction.
func (p fdPrestatGet) Call(ctx context.Context, mod api.Module, stack []uint64) {
	if inst, _ := ctx.Value(instanceKey{}).(*Instance); inst != nil {
		if files := inst.moduleFiles(mod); files != nil && files.socket(int32(stack[0])) != nil {
			stack[0] = errnoBadfCode
			return
		}
	}
	p.prestat.Call(ctx, mod, stack)
}
