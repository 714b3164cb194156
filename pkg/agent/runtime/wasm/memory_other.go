//go:build !(linux || darwin)

package wasm

import (
	"errors"
	"os"
)

// region is not used on this platform: linear memories live on the Go heap.
type region struct{}

func reserve(uint64) *region { return nil }

func (*region) grow(uint64) []byte { return nil }

func (*region) free() {}

func (*region) mapFile(uint64, *os.File, uint64) error { return errors.ErrUnsupported }
