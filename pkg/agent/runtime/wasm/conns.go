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
			inst.sockMu.Lock()
			if inst.conns == nil {
				inst.conns = make(map[*net.TCPConn]struct{})
			}
			inst.conns[c] = struct{}{}
			inst.sockMu.Unlock()
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
		inst.sockMu.Lock()
		delete(inst.conns, conn)
		inst.sockMu.Unlock()
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
	i.sockMu.Lock()
	defer i.sockMu.Unlock()
	for c := range i.conns {
		_ = c.Close()
	}
	i.conns = nil
}

// Blocking sockets.
//
// A module may leave its sockets blocking, as Rust's std::net does (it
// cannot even set a listener non-blocking): wazero's sock_accept, fd_read
// and fd_write then block in Go's net package, where neither the cancelled
// context nor poller.wake reaches them, and Stop would wait for the next
// connection or byte forever. Stop closes the instance's sockets instead:
// the blocked call returns an error and the module, cancelled already, ends
// at its next function call.

// findListeners records the preopened listening sockets of the instance,
// which are among its first n descriptors from 3 on. It is called before the
// instance's goroutine starts.
func (i *Instance) findListeners(mod api.Module, n int) {
	files := i.moduleFiles(mod)
	if files == nil {
		return
	}
	for fd := int32(3); fd < 3+int32(n); fd++ {
		if l, ok := files.socket(fd).(*net.TCPListener); ok {
			i.listeners = append(i.listeners, l)
		}
	}
}

// unblockSockets closes the instance's listeners and connections. It may be
// called from any goroutine.
func (i *Instance) unblockSockets() {
	for _, l := range i.listeners {
		_ = l.Close()
	}
	i.closeConns()
}
