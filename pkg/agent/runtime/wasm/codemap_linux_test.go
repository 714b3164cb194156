package wasm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompiledCodeMapped checks that a module's native code is mapped from
// the compilation cache (executable, from a file under the cache directory)
// both when the module was just compiled and when a new runtime loads it
// from the cache, and that instances run from it.
func TestCompiledCodeMapped(t *testing.T) {
	cache := t.TempDir()
	module := wat(t, "loops.wat")
	for _, round := range []string{"compiled afresh", "loaded from the cache"} {
		r, err := New(t.Context(), Config{CacheDir: cache}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		inst, err := r.Start(t.Context(), Spec{ModulePath: module})
		if err != nil {
			t.Fatal(err)
		}
		wait(t, inst)
		if got := inst.Result().ExitCode; got == 0 {
			t.Errorf("%s: exit code 0, want the sum computed", round)
		}
		// At least one: the previous round's may stay mapped until the
		// garbage collector finalizes its code.
		if maps := codeMappings(t, cache); len(maps) == 0 {
			t.Errorf("%s: no executable mapping of a cache file", round)
		}
		if err := r.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// codeMappings lists this process's executable mappings of files under dir.
func codeMappings(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ = filepath.EvalSymlinks(dir)
	var found []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 6 && strings.Contains(f[1], "x") && strings.HasPrefix(f[5], dir+"/") {
			found = append(found, f[5])
		}
	}
	return found
}
