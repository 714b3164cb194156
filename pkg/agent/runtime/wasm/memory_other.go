//go:build !(linux || darwin)

package wasm

// region is not used on this platform: linear memories live on the Go heap.
type region struct{}

func reserve(uint64) *region { return nil }

func (*region) grow(uint64) []byte { return nil }

func (*region) free() {}
