package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// segment is a data segment of a module built by testModule.
type segment struct {
	offset  int32
	data    string
	passive bool
	global  bool // offset is global.get 0 instead of i32.const
}

// testModule builds a module with one exported memory of 2 pages, a global
// holding 100, the given data segments and, if dataCount, a data count
// section.
func testModule(segs []segment, dataCount bool) []byte {
	section := func(id byte, body []byte) []byte {
		return append(binary.AppendUvarint([]byte{id}, uint64(len(body))), body...)
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(5, []byte{1, 0, 2})...)                                                  // memory: min 2 pages
	m = append(m, section(6, append(appendSleb32([]byte{1, 0x7f, 0, opI32Const}, 100), opEnd))...) // global: const i32 = 100
	m = append(m, section(7, []byte{1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0})...)                 // export memory 0
	if dataCount {
		m = append(m, section(12, binary.AppendUvarint(nil, uint64(len(segs))))...)
	}
	body := binary.AppendUvarint(nil, uint64(len(segs)))
	for _, s := range segs {
		switch {
		case s.passive:
			body = append(body, 1)
		case s.global:
			body = append(body, 0, 0x23, 0, opEnd) // global.get 0
		default:
			body = append(body, 0, opI32Const)
			body = appendSleb32(body, s.offset)
			body = append(body, opEnd)
		}
		body = binary.AppendUvarint(body, uint64(len(s.data)))
		body = append(body, s.data...)
	}
	return append(m, section(sectionData, body)...)
}

// memoryAfterInstantiation instantiates module without running it and
// returns its memory.
func memoryAfterInstantiation(t *testing.T, module []byte) []byte {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	mod, err := rt.InstantiateWithConfig(ctx, module, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	mem, ok := mod.Memory().Read(0, mod.Memory().Size())
	if !ok {
		t.Fatal("read memory")
	}
	return bytes.Clone(mem)
}

func countDataSegments(t *testing.T, module []byte) int {
	t.Helper()
	for i := 8; i < len(module); {
		id := module[i]
		size, n := binary.Uvarint(module[i+1:])
		body := module[i+1+n : i+1+n+int(size)]
		i += 1 + n + int(size)
		if id == sectionData {
			count, _ := binary.Uvarint(body)
			return int(count)
		}
	}
	return 0
}

func TestMergeDataSegments(t *testing.T) {
	tests := []struct {
		name      string
		segs      []segment
		dataCount bool
		want      int // data segments after; 0 means the module is returned as is
	}{
		{
			name: "neighbours joined",
			segs: []segment{{offset: 0, data: "ab"}, {offset: 2, data: "cd"}, {offset: 10, data: "ef"}},
			want: 1,
		},
		{
			name: "out of order but disjoint, as Go writes them",
			segs: []segment{{offset: 10, data: "ef"}, {offset: 70000, data: "zz"}, {offset: 0, data: "ab"}, {offset: 4, data: "cd"}},
			want: 2,
		},
		{
			name: "a gap of a page or more kept",
			segs: []segment{{offset: 0, data: "ab"}, {offset: 2 + mergeGap, data: "cd"}, {offset: 2 + mergeGap + 2, data: "ef"}},
			want: 2,
		},
		{
			name: "overlapping segments: order matters",
			segs: []segment{{offset: 0, data: "abcd"}, {offset: 2, data: "XY"}},
		},
		{
			name:      "data count section: instructions may name segments",
			segs:      []segment{{offset: 0, data: "ab"}, {offset: 2, data: "cd"}},
			dataCount: true,
		},
		{
			name:      "passive segment",
			segs:      []segment{{offset: 0, data: "ab"}, {passive: true, data: "cd"}},
			dataCount: true,
		},
		{
			name: "offset from a global",
			segs: []segment{{offset: 0, data: "ab"}, {global: true, data: "cd"}},
		},
		{
			name: "nothing to join",
			segs: []segment{{offset: 0, data: "ab"}, {offset: 9000, data: "cd"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			module := testModule(tt.segs, tt.dataCount)
			got := mergeDataSegments(module)
			if tt.want == 0 {
				if !bytes.Equal(got, module) {
					t.Fatal("module changed; want it returned as is")
				}
				return
			}
			if n := countDataSegments(t, got); n != tt.want {
				t.Errorf("data segments: got %d, want %d", n, tt.want)
			}
			if !bytes.Equal(memoryAfterInstantiation(t, got), memoryAfterInstantiation(t, module)) {
				t.Error("memory after instantiation differs from the original module's")
			}
		})
	}
}

func TestMergeDataSegmentsNotAModule(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x01\x00\x00\x00\x0b\xff"), []byte("not wasm at all")} {
		if got := mergeDataSegments(b); !bytes.Equal(got, b) {
			t.Errorf("mergeDataSegments(%q) = %q, want it unchanged", b, got)
		}
	}
}

// TestMergeDataSegmentsGo checks the case it exists for: a module from the
// Go toolchain gets a handful of segments and the same memory.
func TestMergeDataSegmentsGo(t *testing.T) {
	module := ocitest.BuildGo(t, "examples/hello")
	got := mergeDataSegments(module)
	before, after := countDataSegments(t, module), countDataSegments(t, got)
	t.Logf("data segments: %d → %d", before, after)
	if after == 0 || after > 100 || after >= before {
		t.Errorf("data segments: %d → %d, want a handful", before, after)
	}
	if !bytes.Equal(memoryAfterInstantiation(t, got), memoryAfterInstantiation(t, module)) {
		t.Error("memory after instantiation differs from the original module's")
	}
}
