//go:build !linux

package wasm

// threadCPU cannot measure CPU time outside Linux: used reports it as not
// measured.
type threadCPU struct{}

func (c *threadCPU) start()               {}
func (c *threadCPU) pause()               {}
func (c *threadCPU) resume()              {}
func (c *threadCPU) stop()                {}
func (c *threadCPU) used() (uint64, bool) { return 0, false }
