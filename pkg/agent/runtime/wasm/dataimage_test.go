package wasm

import (
	"bytes"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
)

func TestSplitDataImage(t *testing.T) {
	tests := []struct {
		name   string
		segs   []segment
		count  bool
		wantOK bool
	}{
		{name: "active segments", segs: []segment{{offset: 10, data: "ab"}, {offset: 70000, data: "cd"}}, wantOK: true},
		{name: "one segment", segs: []segment{{offset: 20000, data: "x"}}, wantOK: true},
		{name: "passive segment", segs: []segment{{offset: 10, data: "ab"}, {passive: true, data: "p"}}},
		{name: "offset from a global", segs: []segment{{offset: 10, data: "ab"}, {global: true, data: "g"}}},
		{name: "data count section", segs: []segment{{offset: 10, data: "ab"}}, count: true},
		{name: "overlapping", segs: []segment{{offset: 10, data: "abcd"}, {offset: 12, data: "x"}}},
		{name: "beyond the initial memory", segs: []segment{{offset: 2*pageSize - 1, data: "ab"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			module := testModule(tt.segs, tt.count)
			stripped, img, ok := splitDataImage(module)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if n := countDataSegments(t, stripped); n != 0 {
				t.Errorf("stripped module has %d data segments", n)
			}
			if img.offset%osPage != 0 || len(img.data)%osPage != 0 {
				t.Errorf("image at %d, %d bytes: not aligned to %d", img.offset, len(img.data), osPage)
			}
			// The stripped module with the image laid over its memory is
			// the module as instantiated.
			want := memoryAfterInstantiation(t, module)
			got := memoryAfterInstantiation(t, stripped)
			copy(got[img.offset:], img.data)
			if !bytes.Equal(got, want) {
				t.Error("stripped module plus image differs from the module's memory after instantiation")
			}
		})
	}
}

func TestSplitDataImageWithoutMemory(t *testing.T) {
	// A module whose memory is imported has no memory section.
	module := testModule([]segment{{offset: 10, data: "ab"}}, false)
	i := bytes.Index(module, []byte{sectionMemory, 3, 1, 0, 2})
	if i < 0 {
		t.Fatal("memory section not found")
	}
	module = append(module[:i:i], module[i+5:]...)
	if _, _, ok := splitDataImage(module); ok {
		t.Error("split a module without a memory section")
	}
}

// TestDataImageIsCopyOnWrite runs a module that overwrites its data twice in
// a row, with the image mapped from the cache directory and copied without
// one: each instance starts from the module's data.
func TestDataImageIsCopyOnWrite(t *testing.T) {
	for _, cached := range []bool{true, false} {
		name := "copied"
		dir := ""
		if cached {
			name, dir = "mapped from a file", t.TempDir()
		}
		t.Run(name, func(t *testing.T) {
			r := newRuntime(t, dir)
			path := wat(t, "data.wat")
			for i := range 2 {
				stdout := newSyncBuffer()
				inst, err := r.Start(t.Context(), Spec{ModulePath: path, Stdout: stdout})
				if err != nil {
					t.Fatal(err)
				}
				if res := wait(t, inst); res.ExitCode != 0 {
					t.Fatalf("run %d: %+v", i, res)
				}
				if got := stdout.String(); got != "original\nsecond\n" {
					t.Errorf("run %d printed %q", i, got)
				}
			}
			if cached {
				imgs, _ := filepath.Glob(filepath.Join(dir, "data-*.img"))
				if len(imgs) != 1 {
					t.Fatalf("data images in the cache directory: %v", imgs)
				}
				b, err := os.ReadFile(imgs[0])
				if err != nil || !strings.Contains(string(b), "original\n") {
					t.Errorf("image file: %v, holds the data unchanged: %v", err, strings.Contains(string(b), "original\n"))
				}
			}
		})
	}
}

// TestGoModuleMapsItsDataImage checks that a Go-built module, whose data is
// over a megabyte, runs with its data mapped from the image file.
func TestGoModuleMapsItsDataImage(t *testing.T) {
	if goruntime.GOOS != "linux" {
		t.Skip("reads /proc/self/maps")
	}
	r := newRuntime(t, sharedCache)
	stdout := newSyncBuffer()
	inst, err := r.Start(t.Context(), Spec{ModulePath: hello(t), Env: []string{"INTERVAL=1h"}, Stdout: stdout})
	if err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "hello from edgefabric\n")
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(maps), filepath.Join(sharedCache, "data-")) {
		t.Errorf("no data image of %s mapped:\n%s", sharedCache, maps)
	}
	inst.Stop(0)
	wait(t, inst)
}
