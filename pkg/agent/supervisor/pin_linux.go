package supervisor

import (
	"os"
	"strconv"
)

// pinnedPath names f's file for as long as f stays open, whatever happens to
// the path it was opened by: /proc/self/fd/N, which the kernel resolves to
// the open file itself (Linux and Android). Empty without /proc.
func pinnedPath(f *os.File) string {
	p := "/proc/self/fd/" + strconv.FormatUint(uint64(f.Fd()), 10)
	a, err := os.Stat(p)
	if err != nil {
		return ""
	}
	b, err := f.Stat()
	if err != nil || !os.SameFile(a, b) {
		return ""
	}
	return p
}
