package agent

import (
	"strings"
	"testing"
)

// TestWASMDefaultMemoryLimit: a WASM container without a memory limit of
// its own gets a share of the memory the device offers: a quarter unless
// configured, and a share outside 1-100 % is refused.
func TestWASMDefaultMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		percent int
		want    int64
	}{
		{0, 256 << 20},
		{50, 512 << 20},
		{100, 1 << 30},
	} {
		c := Config{MemoryBytes: 1 << 30, WASMDefaultMemoryPercent: tt.percent}
		if got := c.wasmDefaultMemoryLimit(); got != tt.want {
			t.Errorf("%d%%: got %d, want %d", tt.percent, got, tt.want)
		}
	}
	for _, p := range []int{-1, 101} {
		c := Config{Hub: "hub:1", HubCA: "ca.pem", WASMDefaultMemoryPercent: p}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "default WASM memory limit") {
			t.Errorf("%d%%: got %v, want an error about the default WASM memory limit", p, err)
		}
	}
}
