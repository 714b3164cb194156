package wasm

import (
	"net"
	"reflect"
	"sync"
	"syscall"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
)

// moduleFiles finds the host file descriptors of a module's sockets.
//
// wazero offers no way to it: its file table, and the socket files that wrap
// a *net.TCPListener (preopened) or *net.TCPConn (accepted), are internal.
// moduleFiles reaches them by reflection on the module instance, as wazero
// v1.12 lays them out (api.Module is a *wasm.ModuleInstance whose Sys.FS()
// has LookupFile(fd int32) (*FileEntry, bool); a socket entry's File is a
// struct with a field tl *net.TCPListener or tc *net.TCPConn). Where the
// layout differs, moduleFilesOf or socketFD reports false and poll_oneoff
// stays wazero's; TestPollSocketFD fails then, so that an upgrade of wazero
// shows it.
type moduleFiles struct {
	lookup reflect.Value // func(int32) (*FileEntry, bool)
	file   int           // index of FileEntry's field File
}

// socketFields are the indexes of the fields tc (*net.TCPConn) and tl
// (*net.TCPListener) in a type of wazero's socket files, -1 where it has
// none; looked up by name once per type, not on every call.
type socketFields struct{ tc, tl int }

var socketTypes sync.Map // reflect.Type (struct) → socketFields

func socketFieldsOf(t reflect.Type) socketFields {
	if v, ok := socketTypes.Load(t); ok {
		return v.(socketFields)
	}
	sf := socketFields{tc: -1, tl: -1}
	if f, ok := t.FieldByName("tc"); ok && f.Type == tcpConnType && len(f.Index) == 1 {
		sf.tc = f.Index[0]
	}
	if f, ok := t.FieldByName("tl"); ok && f.Type == tcpListenerType && len(f.Index) == 1 {
		sf.tl = f.Index[0]
	}
	socketTypes.Store(t, sf)
	return sf
}

var (
	tcpConnType     = reflect.TypeFor[*net.TCPConn]()
	tcpListenerType = reflect.TypeFor[*net.TCPListener]()
	int32Type       = reflect.TypeFor[int32]()
	boolType        = reflect.TypeFor[bool]()
)

// moduleFilesOf returns the file table of mod, or false if it cannot be reached.
func moduleFilesOf(mod api.Module) (files *moduleFiles, ok bool) {
	defer func() {
		if recover() != nil {
			files, ok = nil, false
		}
	}()
	v := reflect.ValueOf(mod)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	sys := v.Elem().FieldByName("Sys")
	if !sys.IsValid() || sys.Kind() != reflect.Pointer || sys.IsNil() {
		return nil, false
	}
	fs := sys.MethodByName("FS")
	if !fs.IsValid() || fs.Type().NumIn() != 0 || fs.Type().NumOut() != 1 {
		return nil, false
	}
	fsc := fs.Call(nil)[0]
	if fsc.Kind() != reflect.Pointer || fsc.IsNil() {
		return nil, false
	}
	lookup := fsc.MethodByName("LookupFile")
	if !lookup.IsValid() {
		return nil, false
	}
	t := lookup.Type()
	if t.NumIn() != 1 || t.In(0) != int32Type || t.NumOut() != 2 || t.Out(1) != boolType ||
		t.Out(0).Kind() != reflect.Pointer || t.Out(0).Elem().Kind() != reflect.Struct {
		return nil, false
	}
	f, ok := t.Out(0).Elem().FieldByName("File")
	if !ok || f.Type.Kind() != reflect.Interface || len(f.Index) != 1 {
		return nil, false
	}
	return &moduleFiles{lookup: lookup, file: f.Index[0]}, true
}

// socketFD returns the host file descriptor of the module's file fd if it
// is a TCP socket (listener or connection). The descriptor stays valid while
// the module keeps fd open: only the module's own calls close it.
func (m *moduleFiles) socketFD(fd int32) (host int, ok bool) {
	conn := m.socket(fd)
	if conn == nil {
		return -1, false
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, false
	}
	host = -1
	if err := rc.Control(func(fd uintptr) { host = int(fd) }); err != nil || host < 0 {
		return -1, false
	}
	return host, true
}

// tcpConn returns the connection behind the module's file fd, or nil if fd
// is not an accepted TCP connection.
func (m *moduleFiles) tcpConn(fd int32) *net.TCPConn {
	c, _ := m.socket(fd).(*net.TCPConn)
	return c
}

// socket returns the *net.TCPConn or *net.TCPListener behind the module's
// file fd, or nil.
func (m *moduleFiles) socket(fd int32) (conn syscall.Conn) {
	defer func() {
		if recover() != nil {
			conn = nil
		}
	}()
	if fd < 0 {
		return nil
	}
	out := m.lookup.Call([]reflect.Value{reflect.ValueOf(fd)})
	if !out[1].Bool() || out[0].IsNil() {
		return nil
	}
	file := out[0].Elem().Field(m.file)
	if file.IsNil() {
		return nil
	}
	f := file.Elem() // the dynamic value: a pointer to wazero's socket file
	if f.Kind() != reflect.Pointer || f.IsNil() || f.Elem().Kind() != reflect.Struct {
		return nil
	}
	s := f.Elem()
	switch sf := socketFieldsOf(s.Type()); {
	case sf.tc >= 0:
		if v := s.Field(sf.tc); v.CanAddr() {
			if c := *(**net.TCPConn)(unsafe.Pointer(v.UnsafeAddr())); c != nil {
				return c
			}
		}
	case sf.tl >= 0:
		if v := s.Field(sf.tl); v.CanAddr() {
			if l := *(**net.TCPListener)(unsafe.Pointer(v.UnsafeAddr())); l != nil {
				return l
			}
		}
	}
	return nil
}
