package workingset

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Trim pages out every private or shared file-backed mapping of the process
// that is not writable: the binary's text and read-only data, compiled WASM
// code mapped from the compilation cache, and read-only file maps such as the
// store's; and marks them for random access until Wake.
func Trim() (Stats, error) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return Stats{}, fmt.Errorf("read mappings: %w", err)
	}
	st := Stats{ResidentBefore: resident()}
	for _, m := range readOnlyFileMappings(maps) {
		// The range is a mapping of this process, not Go memory: madvise
		// takes it as addresses, with no slice to stand for it.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT); errno != 0 {
			if errno == syscall.EINVAL && st.Mappings == 0 {
				err := error(errno)
				return st, fmt.Errorf("madvise(MADV_PAGEOUT): %w", err) // kernel before 5.4
			}
			continue // the mapping went away meanwhile
		}
		madvise(m, unix.MADV_RANDOM)
		st.Mappings++
		st.Bytes += int64(m.end - m.start)
	}
	st.ResidentAfter = resident()
	return st, nil
}

// Wake restores read-ahead (MADV_NORMAL) on the mappings Trim marked.
func Wake() error {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("read mappings: %w", err)
	}
	for _, m := range readOnlyFileMappings(maps) {
		madvise(m, unix.MADV_NORMAL)
	}
	return nil
}

// madvise advises on a mapping of this process, not Go memory: madvise takes
// it as addresses, with no slice to stand for it. Errors are ignored: the
// mapping may have gone away meanwhile, and the advice is only advice.
func madvise(m mapping, advice int) {
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, uintptr(advice))
}

type mapping struct{ start, end uintptr }

// readOnlyFileMappings parses /proc/self/maps and returns the mappings of a
// file (not anonymous, not [vdso] and the like) without write permission.
func readOnlyFileMappings(maps []byte) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// address perms offset dev inode [path]
		if len(f) < 6 || !strings.HasPrefix(f[5], "/") || len(f[1]) < 2 || f[1][1] == 'w' || f[4] == "0" {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, mapping{uintptr(start), uintptr(end)})
	}
	return out
}

// resident is the process's resident set in bytes, 0 if unknown.
func resident() int64 { return statm(1) }

// residentFile is the process's resident file-backed (and shared) memory in
// bytes, 0 if unknown.
func residentFile() int64 { return statm(2) }

// statm returns field i of /proc/self/statm, in bytes.
func statm(i int) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) <= i {
		return 0
	}
	pages, _ := strconv.ParseInt(f[i], 10, 64)
	return pages * int64(os.Getpagesize())
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
