package wasm

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
)

// WASM binary format: section IDs and opcodes that mergeDataSegments reads.
const (
	sectionData      = 11
	sectionDataCount = 12
	opI32Const       = 0x41
	opEnd            = 0x0b
)

// mergeGap is the largest run of zeros between two data segments that
// mergeDataSegments fills in to join them. Below a page, filling it cannot
// make a page resident that the module would not have touched anyway.
const mergeGap = 4096

// mergeDataSegments returns module with runs of its active data segments
// joined into one segment each, or module itself if it cannot be done safely.
//
// The Go toolchain writes a module's initialised data as tens of thousands of
// small segments (31,386 for examples/hello). wazero copies them into every
// new instance one by one and keeps a slice header for each per instance:
// about 2 ms of CPU and 0.7 MiB of heap per instance, more than the rest of
// instantiating it. Joined, the same bytes land in a handful of copies.
//
// The result behaves the same: the segments are joined only if all of them
// are active, in memory 0, at constant offsets, and none overlaps another (so
// the order they are written in does not matter, and no gap filled with
// zeros holds another's data), and the module has no data count section
// (without which no instruction can name a data segment, so their number and
// order are not observable). Linear memory starts zeroed, so zeros written
// into a gap change nothing.
func mergeDataSegments(module []byte) []byte {
	out, err := joinDataSegments(module)
	if err != nil {
		return module
	}
	return out
}

var errNotMergeable = errors.New("data segments cannot be merged")

type dataSegment struct {
	offset uint32
	data   []byte
	owned  bool // data was built here, not a slice of the module
}

func joinDataSegments(module []byte) ([]byte, error) {
	if len(module) < 8 || !bytes.Equal(module[:4], []byte("\x00asm")) {
		return nil, errNotMergeable
	}
	var dataStart, dataEnd int // the data section, id byte to end
	var segs []dataSegment
	for i := 8; i < len(module); {
		start := i
		id := module[i]
		size, n := binary.Uvarint(module[i+1:])
		if n <= 0 || size > uint64(len(module)-i-1-n) {
			return nil, errNotMergeable
		}
		body := module[i+1+n : i+1+n+int(size)]
		i += 1 + n + int(size)
		switch id {
		case sectionDataCount:
			return nil, errNotMergeable
		case sectionData:
			if segs != nil {
				return nil, errNotMergeable
			}
			var err error
			if segs, err = parseDataSection(body); err != nil {
				return nil, err
			}
			dataStart, dataEnd = start, i
		}
	}
	if len(segs) < 2 {
		return nil, errNotMergeable
	}

	// Segments that do not overlap can be written in any order: sort them by
	// offset, so that the gaps between neighbours hold nobody's data.
	slices.SortStableFunc(segs, func(a, b dataSegment) int { return cmp.Compare(a.offset, b.offset) })
	merged := []dataSegment{segs[0]}
	for _, s := range segs[1:] {
		last := &merged[len(merged)-1]
		end := uint64(last.offset) + uint64(len(last.data))
		if uint64(s.offset) < end {
			return nil, errNotMergeable // overlapping: the order matters
		}
		if gap := uint64(s.offset) - end; gap < mergeGap {
			if !last.owned {
				last.data, last.owned = append([]byte(nil), last.data...), true
			}
			last.data = append(last.data, make([]byte, gap)...)
			last.data = append(last.data, s.data...)
			continue
		}
		merged = append(merged, s)
	}
	if len(merged) == len(segs) {
		return nil, errNotMergeable
	}

	body := binary.AppendUvarint(nil, uint64(len(merged)))
	for _, s := range merged {
		body = append(body, 0, opI32Const)
		body = appendSleb32(body, int32(s.offset))
		body = append(body, opEnd)
		body = binary.AppendUvarint(body, uint64(len(s.data)))
		body = append(body, s.data...)
	}
	out := make([]byte, 0, len(module)-(dataEnd-dataStart)+len(body)+6)
	out = append(out, module[:dataStart]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = append(out, body...)
	out = append(out, module[dataEnd:]...)
	return out, nil
}

// parseDataSection reads a data section made only of active segments for
// memory 0 at i32.const offsets that are not negative.
func parseDataSection(b []byte) ([]dataSegment, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, errNotMergeable
	}
	b = b[n:]
	segs := make([]dataSegment, 0, count)
	for range count {
		// Flags 0: active, memory 0, then the offset expression.
		if len(b) < 2 || b[0] != 0 || b[1] != opI32Const {
			return nil, errNotMergeable
		}
		off, n := readSleb32(b[2:])
		if n <= 0 || off < 0 || len(b) < 2+n+1 || b[2+n] != opEnd {
			return nil, errNotMergeable
		}
		b = b[2+n+1:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, errNotMergeable
		}
		segs = append(segs, dataSegment{offset: uint32(off), data: b[n : n+int(size)]})
		b = b[n+int(size):]
	}
	if len(b) != 0 {
		return nil, errNotMergeable
	}
	return segs, nil
}

// readSleb32 decodes a signed LEB128 int32; n <= 0 if b does not start with one.
func readSleb32(b []byte) (v int32, n int) {
	var result int64
	var shift uint
	for i, c := range b {
		if i == 5 {
			return 0, 0
		}
		result |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				result |= -1 << shift
			}
			if result < -1<<31 || result > 1<<31-1 {
				return 0, 0
			}
			return int32(result), i + 1
		}
	}
	return 0, 0
}

// appendSleb32 appends v as signed LEB128.
func appendSleb32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
