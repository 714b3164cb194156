package wasm

import (
	"context"
	"net"

	"github.com/tetratelabs/wazero/api"
)

// Accepted connections.
//
// wazero v1.12 never closes the *net.TCPConn of a connection a module
// accepted: its socket file's Close marks the file closed and then calls
// Shutdown(SHUT_RDWR), which calls Close again, which sees the mark and does
// nothing. A connection the module closes stays open (its peer waits for an
// end that does not come) until Go's garbage collector finalises it, and so
// do the connections of a module that ended. The runtime's sock_accept keeps
// each accepted connection of an instance, its fd_close closes the
// connection behind a closed fd, and the instance closes the ones left when
// it ends.

// sockAccept is wazero's sock_accept, which also records the connection.
type sockAccept struct {
	accept api.GoModuleFunction
}

// Call implements api.GoModuleFunction.
func (s sockAccept) Call(ctx context.Context, mod api.Module, stack []uint64) {
	result := uint32(stack[2])
	s.accept.Call(ctx, mod, stack)
	inst, _ := ctx.Value(instanceKey{}).(*Instance)
	if inst == nil || stack[0] != 0 {
		return
	}
	fd, ok := mod.Memory().ReadUint32Le(result)
	if !ok {
		return
	}
	if files := inst.moduleFiles(mod); files != nil {
		if c := files.tcpConn(int32(fd)); c != nil {
			if inst.conns == nil {
				inst.conns = make(map[*net.TCPConn]struct{})
			}
			inst.conns[c] = struct{}{}
		}
	}
}

// fdClose is wazero's fd_close, which also closes the connection behind a
// socket.
type fdClose struct {
	close api.GoModuleFunction
}

// Call implements api.GoModuleFunction.
func (f fdClose) Call(ctx context.Context, mod api.Module, stack []uint64) {
	inst, _ := ctx.Value(instanceKey{}).(*Instance)
	var conn *net.TCPConn
	if inst != nil {
		if files := inst.moduleFiles(mod); files != nil {
			conn = files.tcpConn(int32(stack[0]))
		}
	}
	f.close.Call(ctx, mod, stack)
	if conn != nil && stack[0] == 0 {
		_ = conn.Close()
		delete(inst.conns, conn)
	}
}

// moduleFiles returns the instance's moduleFiles, or nil if they cannot be
// reached. Only the instance's goroutine calls it.
func (i *Instance) moduleFiles(mod api.Module) *moduleFiles {
	if i.files == nil && !i.filesFailed {
		var ok bool
		if i.files, ok = moduleFilesOf(mod); !ok {
			i.filesFailed = true // wazero is not what it was: leave sockets to it
			i.runtime.log.Warn("module sockets cannot be reached; poll_oneoff reports them ready at once", "module", i.modulePath)
		}
	}
	return i.files
}

// closeConns closes the connections the instance accepted and did not close.
func (i *Instance) closeConns() {
	for c := range i.conns {
		_ = c.Close()
	}
	i.conns = nil
}
