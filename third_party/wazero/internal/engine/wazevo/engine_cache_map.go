package wazevo

import (
	"io"
	"os"

	"github.com/tetratelabs/wazero/internal/platform"
)

// codeAlignment is the alignment of the native code in a cache file: the
// largest page size of the platforms wazero compiles for (arm64 kernels may
// use 64 KiB pages).
const codeAlignment = 64 << 10

// codePadding is how many zero bytes follow a cache file's header of
// headerLen bytes, so that its native code starts at a multiple of
// codeAlignment.
func codePadding(headerLen int) int {
	return (codeAlignment - headerLen%codeAlignment) % codeAlignment
}

// mapCodeFile maps size bytes of native code at offset in a cache file as
// read-only executable memory, and moves the reader past them. It reports
// false, having moved nothing, where the reader is not a file or the
// platform cannot map files for execution.
func mapCodeFile(reader io.Reader, offset int64, size int) ([]byte, bool) {
	f, ok := reader.(*os.File)
	if !ok {
		return nil, false
	}
	code, err := platform.MapCodeFile(f, offset, size)
	if err != nil {
		return nil, false
	}
	if _, err := f.Seek(offset+int64(size), io.SeekStart); err != nil {
		_ = platform.MunmapCodeSegment(code)
		return nil, false
	}
	return code, true
}

// unmapOnError releases code that failed its checksum.
func unmapOnError(code []byte) {
	_ = platform.MunmapCodeSegment(code)
}
