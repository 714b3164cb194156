package wasm

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// limitedMemory allocates the linear memory of one instance, up to a limit if
// there is one, and notes when a memory.grow was refused because of it.
//
// Where the platform allows it (reserve), the memory lives outside the Go
// heap: an address range as large as the memory may ever grow is reserved
// without access, and made readable and writable as the module grows into it.
// Growing then never copies, pages the module never writes never become
// resident, and the memories of many instances do not count towards the Go
// heap, whose size sets the garbage collector's goal and with it how much
// memory the agent keeps. Elsewhere, and if the reservation fails, the memory
// is a []byte on the Go heap that grows geometrically.
type limitedMemory struct {
	limit uint64 // bytes, a multiple of the page size; 0 means no limit
	hit   atomic.Bool

	// Set during instantiation when the initial memory is over the limit;
	// it is allocated anyway (wazero cannot refuse it) and the instance
	// does not run.
	startOver bool
	startSize uint64

	// image, if set, is the module's initialised data, which is not in the
	// module: it is mapped (or copied) into the memory when it is created.
	image *dataImage

	// size is the linear memory's current size in bytes, for Usage.
	size atomic.Uint64
}

func (m *limitedMemory) allocate(capacity, maxSize uint64) experimental.LinearMemory {
	size := maxSize
	if m.limit > 0 {
		// Room for the limit, or for an initial size over it, which is
		// allocated and then refused to run.
		size = min(maxSize, max(m.limit, capacity))
	}
	return &linearMemory{owner: m, capacity: capacity, max: maxSize, reserved: reserve(size)}
}

// linearMemory is a growable []byte; see experimental.LinearMemory. wazero
// calls it from one goroutine at a time.
type linearMemory struct {
	owner    *limitedMemory
	capacity uint64 // suggested initial capacity
	max      uint64
	started  bool
	reserved *region // nil: buf is on the Go heap
	buf      []byte
}

func (l *linearMemory) Reallocate(size uint64) []byte {
	limit := l.owner.limit
	first := !l.started
	l.started = true
	if limit > 0 && size > limit {
		if !first {
			l.owner.hit.Store(true)
			return nil
		}
		l.owner.startOver, l.owner.startSize = true, size
	}
	l.owner.size.Store(size)
	if l.reserved != nil {
		buf := l.reserved.grow(size)
		if first && buf != nil {
			l.initData(buf)
		}
		return buf
	}
	if first {
		hint := l.capacity
		if limit > 0 {
			hint = min(hint, limit)
		}
		l.buf = make([]byte, size, max(size, hint))
		l.initData(l.buf)
		return l.buf
	}
	if size <= uint64(cap(l.buf)) {
		l.buf = l.buf[:size]
		return l.buf
	}
	// Grow geometrically, within the limit and the module's maximum.
	ceiling := l.max
	if limit > 0 {
		ceiling = min(ceiling, limit)
	}
	buf := make([]byte, size, max(size, min(2*uint64(cap(l.buf)), ceiling)))
	copy(buf, l.buf)
	l.buf = buf
	return buf
}

// initData puts the module's data image into the new memory buf: mapped
// from its file where the memory is a reserved region and the image has a
// file, copied otherwise. splitDataImage made sure it fits the initial size.
func (l *linearMemory) initData(buf []byte) {
	img := l.owner.image
	if img == nil || img.offset+uint64(len(img.data)) > uint64(len(buf)) {
		return
	}
	if l.reserved != nil && img.file != nil {
		if err := l.reserved.mapFile(img.offset, img.file, uint64(len(img.data))); err == nil {
			return
		}
	}
	copy(buf[img.offset:], img.data)
}

// Free releases the memory. wazero calls it when the module is closed, from
// the goroutine that ran it or after that goroutine has left the module's
// code, so nothing reads the memory afterwards.
func (l *linearMemory) Free() {
	l.owner.size.Store(0)
	if l.reserved != nil {
		l.reserved.free()
		l.reserved = nil
	}
	l.buf = nil
}
