package wasm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// sectionMemory is the ID of the memory section.
const sectionMemory = 5

// osPage is the granularity a data image is mapped at: the largest OS page
// size edgefabric's targets use (arm64 kernels may use 16 KiB pages).
const osPage = 16 << 10

// dataImage is a module's initialised data laid out as it lies in linear
// memory at instantiation, from offset to offset+len(data).
//
// A Go-built module carries over a megabyte of data (type information, the
// function table the runtime reads for stack traces, strings). Copied into
// each instance, all of it is resident per instance although an idle program
// reads little of it. Mapped from a file instead (copy-on-write), an
// instance holds only the pages it touches, pages it only reads are shared
// by every instance through the page cache, and instantiating copies
// nothing.
type dataImage struct {
	offset uint64 // in linear memory; a multiple of osPage
	data   []byte // len is a multiple of osPage
	file   *os.File
}

// splitDataImage returns module without its data section and the data that
// section initialises, laid out as an image, if that changes nothing the
// module can observe; otherwise ok is false. It can be done when
// mergeDataSegments could join the segments (all active, in memory 0, at
// constant offsets, none overlapping, no data count section), the module
// defines its one memory itself (not imported, not shared, 32-bit), and
// every segment lies inside the memory's initial size, so that
// instantiation would never trap on one.
func splitDataImage(module []byte) (stripped []byte, img *dataImage, ok bool) {
	if len(module) < 8 || !bytes.Equal(module[:4], []byte("\x00asm")) {
		return nil, nil, false
	}
	var dataStart, dataEnd int
	var segs []dataSegment
	var initial uint64
	memories := 0
	for i := 8; i < len(module); {
		start := i
		id := module[i]
		size, n := binary.Uvarint(module[i+1:])
		if n <= 0 || size > uint64(len(module)-i-1-n) {
			return nil, nil, false
		}
		body := module[i+1+n : i+1+n+int(size)]
		i += 1 + n + int(size)
		switch id {
		case sectionDataCount:
			return nil, nil, false
		case sectionMemory:
			count, n := binary.Uvarint(body)
			if n <= 0 || count != 1 || len(body) < n+2 {
				return nil, nil, false
			}
			// Limits: flags 0 (min) or 1 (min, max); shared or 64-bit memories are not ours.
			if flags := body[n]; flags > 1 {
				return nil, nil, false
			}
			min, m := binary.Uvarint(body[n+1:])
			if m <= 0 {
				return nil, nil, false
			}
			memories++
			initial = min * pageSize
		case sectionData:
			if segs != nil {
				return nil, nil, false
			}
			var err error
			if segs, err = parseDataSection(body); err != nil {
				return nil, nil, false
			}
			dataStart, dataEnd = start, i
		}
	}
	if memories != 1 || len(segs) == 0 {
		return nil, nil, false
	}
	slices.SortStableFunc(segs, func(a, b dataSegment) int { return int(a.offset) - int(b.offset) })
	lo := uint64(segs[0].offset) &^ (osPage - 1)
	var hi uint64
	for i, s := range segs {
		end := uint64(s.offset) + uint64(len(s.data))
		if i > 0 && uint64(s.offset) < uint64(segs[i-1].offset)+uint64(len(segs[i-1].data)) {
			return nil, nil, false // overlapping: the order they are written in matters
		}
		hi = max(hi, end)
	}
	hi = (hi + osPage - 1) &^ (osPage - 1)
	if hi > initial {
		return nil, nil, false
	}
	data := make([]byte, hi-lo)
	for _, s := range segs {
		copy(data[uint64(s.offset)-lo:], s.data)
	}
	stripped = make([]byte, 0, len(module)-(dataEnd-dataStart))
	stripped = append(stripped, module[:dataStart]...)
	stripped = append(stripped, module[dataEnd:]...)
	return stripped, &dataImage{offset: lo, data: data}, true
}

// persist writes the image to dir as name (once: an image of the same name
// holds the same bytes) and keeps the file open to map it into instances.
func (img *dataImage) persist(dir, name string) error {
	path := filepath.Join(dir, name)
	if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(img.data)) {
		tmp, err := os.CreateTemp(dir, name+".tmp-*")
		if err != nil {
			return err
		}
		_, werr := tmp.Write(img.data)
		if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write data image: %w", err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	img.file = f
	return nil
}

// close closes the image's file, if it has one.
func (img *dataImage) close() error {
	if img == nil || img.file == nil {
		return nil
	}
	return img.file.Close()
}
