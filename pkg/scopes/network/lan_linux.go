package network

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

func discoverLAN() (LAN, error) {
	route, err := os.Open("/proc/net/route")
	if err != nil {
		return lanFromSourceAddress()
	}
	defer route.Close()
	var arp io.Reader // nil when the neighbour table cannot be read (e.g. Android)
	if f, err := os.Open("/proc/net/arp"); err == nil {
		defer f.Close()
		arp = f
	}
	lan, err := lanFromTables(route, binary.NativeEndian, arp, func(iface string) ([]net.Addr, error) {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return nil, err
		}
		return ifi.Addrs()
	})
	if errors.Is(err, errNoDefaultRoute) {
		return lanFromSourceAddress()
	}
	if err != nil {
		return LAN{}, fmt.Errorf("read /proc/net: %w", err)
	}
	return lan, nil
}
