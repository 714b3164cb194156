package workingset

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestTrimDropsCleanFilePages maps a file, reads every page of it, and
// checks that Trim takes it out of the resident set while the process's
// own writes survive.
func TestTrimDropsCleanFilePages(t *testing.T) {
	const size = 16 << 20
	path := filepath.Join(t.TempDir(), "blob")
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i / 4096)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Written back, the pages are clean, as a binary's are.
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Munmap(m) }()
	var sum, want int
	for i := 0; i < size; i += 4096 {
		sum += int(m[i])
		want += int(byte(i / 4096))
	}
	if sum != want {
		t.Fatalf("sum of the mapped pages' first bytes: got %d, want %d", sum, want)
	}
	// Memory the process wrote must be left alone.
	anon := make([]byte, 4<<20)
	for i := range anon {
		anon[i] = 7
	}

	before := resident()
	st, err := Trim()
	if err != nil {
		t.Skipf("kernel cannot page out: %v", err)
	}
	if st.Mappings == 0 || st.Bytes < size {
		t.Errorf("trimmed %d mappings, %d bytes; want the %d-byte file among them", st.Mappings, st.Bytes, size)
	}
	if dropped := before - resident(); dropped < size/2 {
		t.Errorf("resident set went from %d to %d bytes; want at least %d fewer", before, resident(), size/2)
	}
	// The pages read back with what the file holds.
	for i := 0; i < size; i += 4096 {
		if m[i] != byte(i/4096) {
			t.Fatalf("byte %d after trim: got %d, want %d", i, m[i], byte(i/4096))
		}
	}
	for i, b := range anon {
		if b != 7 {
			t.Fatalf("anonymous byte %d after trim: got %d, want 7", i, b)
		}
	}
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&m[0])))
	if !randomRead(t, start) {
		t.Errorf("mapping %s not marked for random access after Trim", start)
	}
	if err := Wake(); err != nil {
		t.Fatal(err)
	}
	if randomRead(t, start) {
		t.Errorf("mapping %s still marked for random access after Wake", start)
	}
}

// randomRead reports whether the mapping starting at start (hex, then "-")
// has the kernel's random-read flag (VmFlags "rr" in /proc/self/smaps).
func randomRead(t *testing.T, start string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in := false // past the mapping's first line: its VmFlags is the next
	for line := range strings.Lines(string(b)) {
		in = in || strings.HasPrefix(line, start)
		if in && strings.HasPrefix(line, "VmFlags:") {
			return slices.Contains(strings.Fields(line)[1:], "rr")
		}
	}
	t.Fatalf("no mapping at %s in smaps", start)
	return false
}

func TestReadOnlyFileMappings(t *testing.T) {
	maps := []byte(`00400000-00c0a000 r-xp 00000000 fe:00 9986018    /usr/bin/edgeagent
00c0a000-014e1000 r--p 0080a000 fe:00 9986018    /usr/bin/edgeagent
014e1000-01561000 rw-p 010e1000 fe:00 9986018    /usr/bin/edgeagent
01561000-015a0000 rw-p 00000000 00:00 0
c000000000-c004000000 rw-p 00000000 00:00 0
7f0000000000-7f0000100000 r--s 00000000 fe:00 1234    /var/lib/edgeagent/agent.db
7ffd4b7e2000-7ffd4b7e4000 r-xp 00000000 00:00 0      [vdso]
`)
	got := readOnlyFileMappings(maps)
	want := []mapping{{0x400000, 0xc0a000}, {0xc0a000, 0x14e1000}, {0x7f0000000000, 0x7f0000100000}}
	if len(got) != len(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %x, want %x", i, got[i], want[i])
		}
	}
}
