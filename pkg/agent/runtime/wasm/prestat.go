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
// opening a file through the socket fails with ENOTDIR.
//
// The sockets come first, from fd 3 on (hack/wazero patch 0009), so that a
// program that takes its listener from fd 3 finds it whatever volumes the
// pod has. The runtime's fd_prestat_get describes a socket as a preopen that
// is not a directory (tag 1, no name): wasi-libc and Go skip it and go on to
// the directories after it, where EBADF would have ended their scan there.

// prestatSocket is the tag of a preopened socket's prestat: not
// preopentype dir (0), the only one WASI preview 1 defines.
const prestatSocket = 1

// fdPrestatGet is wazero's fd_prestat_get, but for sockets.
type fdPrestatGet struct {
	prestat api.GoModuleFunction
}

// Call implements api.GoModuleFunction.
func (p fdPrestatGet) Call(ctx context.Context, mod api.Module, stack []uint64) {
	if inst, _ := ctx.Value(instanceKey{}).(*Instance); inst != nil {
		if files := inst.moduleFiles(mod); files != nil && files.socket(int32(stack[0])) != nil {
			// prestat: the tag (u8, padded to 4 bytes), then the name's length.
			if !mod.Memory().WriteUint32Le(uint32(stack[1]), prestatSocket) || !mod.Memory().WriteUint32Le(uint32(stack[1])+4, 0) {
				stack[0] = errnoFault
				return
			}
			stack[0] = 0
			return
		}
	}
	p.prestat.Call(ctx, mod, stack)
}
