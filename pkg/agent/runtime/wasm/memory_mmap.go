//go:build linux || darwin

package wasm

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// region is an address range reserved for one linear memory; its first
// committed bytes are readable and writable, the rest gives no access.
type region struct {
	mem       []byte
	committed uint64
}

// reserve reserves size bytes of address space with no access, which costs
// neither memory nor, on Linux, commit charge. It returns nil where that is
// not worth doing (a 32-bit address space is too small to reserve several
// modules' maximum) or fails.
func reserve(size uint64) *region {
	if size == 0 || strconv.IntSize < 64 {
		return nil
	}
	mem, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil
	}
	return &region{mem: mem}
}

// grow makes the first size bytes usable and returns them, or nil if size is
// beyond the reservation or the OS refuses. size is a multiple of the WASM
// page size, hence of the OS page size.
func (r *region) grow(size uint64) []byte {
	if size > uint64(len(r.mem)) {
		return nil
	}
	if size > r.committed {
		if err := syscall.Mprotect(r.mem[r.committed:size], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil
		}
		r.committed = size
	}
	return r.mem[:size:size]
}

// mapFile maps length bytes of f, from its start, copy-on-write over the
// region at off: a multiple of the OS page size, inside the committed part.
// Writes to those pages stay the instance's own; pages never touched cost
// nothing; pages only read are the page cache's, shared with every other
// instance that maps the file.
func (r *region) mapFile(off uint64, f *os.File, length uint64) error {
	if off+length > r.committed || length == 0 {
		return fmt.Errorf("map %d bytes at %d: beyond the %d committed", length, off, r.committed)
	}
	_, err := unix.MmapPtr(int(f.Fd()), 0, unsafe.Pointer(&r.mem[off]), uintptr(length),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	return err
}

// free returns the range to the OS.
func (r *region) free() {
	_ = syscall.Munmap(r.mem)
	r.mem, r.committed = nil, 0
}
