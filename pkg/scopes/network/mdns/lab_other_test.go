//go:build !linux

package mdns

import (
	"net"
	"testing"
)

// lab returns two LAN sides for a test: the loopback interface twice, if it
// can carry multicast; else it skips the test.
func lab(t *testing.T) (a, b side) {
	t.Helper()
	ifaces, _ := net.Interfaces()
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagLoopback != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagUp != 0 {
			return loopback(t, ifi)
		}
	}
	t.Skip("no interface to test multicast DNS on: loopback has no MULTICAST flag")
	return side{}, side{}
}
