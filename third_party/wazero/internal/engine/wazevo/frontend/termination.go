package frontend

import (
	"unsafe"

	"github.com/tetratelabs/wazero/internal/wasm"
)

// moduleInstanceClosedOffset is the offset of wasm.ModuleInstance's Closed
// word, which the inline termination check at loop headers loads.
var moduleInstanceClosedOffset = uint32(unsafe.Offsetof(wasm.ModuleInstance{}.Closed))
