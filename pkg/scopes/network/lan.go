package network

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DiscoverLAN reads the facts about the LAN that holds the device's default
// route. On Linux it reads the IPv4 routing and neighbour tables under /proc
// and the interface's addresses; elsewhere, or when Linux has no IPv4 default
// route, it asks the system which local address it would use to reach the
// Internet (no packet is sent) and leaves the gateway unknown. It does not set
// LAN.Override. It may block briefly on system calls only.
func DiscoverLAN() (LAN, error) {
	return discoverLAN()
}

// errNoDefaultRoute is returned by lanFromTables when the table has no default route.
var errNoDefaultRoute = errors.New("no IPv4 default route")

// Flags of /proc/net/route (RTF_*) and /proc/net/arp (ATF_*).
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
	atfCom     = 0x2
)

// lanFromTables reads the LAN facts from Linux's /proc/net/route, whose
// addresses are in byte order, and /proc/net/arp (arp may be nil), and the
// interface addresses addrs returns.
func lanFromTables(route io.Reader, order binary.ByteOrder, arp io.Reader, addrs func(iface string) ([]net.Addr, error)) (LAN, error) {
	iface, gw, err := defaultRoute(route, order)
	if err != nil {
		return LAN{}, err
	}
	lan := LAN{Interface: iface, Gateway: gw}
	as, err := addrs(iface)
	if err != nil {
		return LAN{}, fmt.Errorf("addresses of %s: %w", iface, err)
	}
	lan.Subnet = subnetFor(as, gw)
	if arp != nil {
		mac, err := neighbour(arp, gw, iface)
		if err != nil {
			return LAN{}, err
		}
		lan.GatewayMAC = mac
	}
	return lan, nil
}

// defaultRoute returns the interface and gateway of the IPv4 default route
// with the lowest metric in a /proc/net/route table, whose addresses are
// printed as numbers in the kernel's byte order.
func defaultRoute(r io.Reader, order binary.ByteOrder) (iface string, gw netip.Addr, err error) {
	sc := bufio.NewScanner(r)
	best := -1
	for line := 0; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if line == 0 || len(f) < 8 {
			continue // the header, or a line too short to be a route
		}
		dest, err1 := strconv.ParseUint(f[1], 16, 32)
		gateway, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 16)
		metric, err4 := strconv.Atoi(f[6])
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return "", netip.Addr{}, fmt.Errorf("parse route %q: %w", sc.Text(), err)
		}
		if dest != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		if best >= 0 && metric >= best {
			continue
		}
		var b [4]byte
		order.PutUint32(b[:], uint32(gateway))
		iface, gw, best = f[0], netip.AddrFrom4(b), metric
	}
	if err := sc.Err(); err != nil {
		return "", netip.Addr{}, fmt.Errorf("read routes: %w", err)
	}
	if best < 0 {
		return "", netip.Addr{}, errNoDefaultRoute
	}
	return iface, gw, nil
}

// neighbour returns the hardware address of ip on iface from a /proc/net/arp
// table, or nil if the entry is missing or incomplete.
func neighbour(r io.Reader, ip netip.Addr, iface string) (net.HardwareAddr, error) {
	sc := bufio.NewScanner(r)
	for line := 0; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		// IP address, HW type, Flags, HW address, Mask, Device
		if line == 0 || len(f) < 6 || f[5] != iface {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil || a != ip {
			continue
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 16)
		if err != nil || flags&atfCom == 0 {
			continue
		}
		mac, err := net.ParseMAC(f[3])
		if err != nil || isZero(mac) {
			continue
		}
		return mac, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read neighbours: %w", err)
	}
	return nil, nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// subnetFor returns the masked prefix of the address in addrs whose network
// holds gw, else of the first IPv4 address, else of the first global unicast
// address; the zero Prefix if there is none.
func subnetFor(addrs []net.Addr, gw netip.Addr) netip.Prefix {
	var prefixes []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ones, _ := ipn.Mask.Size()
		ip = ip.Unmap()
		if ip.Is4() && ones > 32 {
			ones -= 96
		}
		p, err := ip.Prefix(ones)
		if err != nil {
			continue
		}
		prefixes = append(prefixes, p)
	}
	if gw.IsValid() {
		for _, p := range prefixes {
			if p.Contains(gw) {
				return p
			}
		}
	}
	for _, p := range prefixes {
		if p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			return p
		}
	}
	for _, p := range prefixes {
		if p.Addr().IsGlobalUnicast() {
			return p
		}
	}
	return netip.Prefix{}
}

// probeAddrs are documentation addresses a UDP socket is "connected" to so the
// system picks the local address it would use to reach the Internet. No packet
// is sent.
var probeAddrs = []string{"203.0.113.1:9", "[2001:db8::1]:9"}

// lanFromSourceAddress finds the interface holding the local address the
// system would use to reach the Internet, and its subnet. The gateway stays unknown.
func lanFromSourceAddress() (LAN, error) {
	var errs []error
	for _, dst := range probeAddrs {
		c, err := net.Dial("udp", dst)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		local := c.LocalAddr().(*net.UDPAddr)
		c.Close()
		lan, err := lanForLocalIP(local.IP)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return lan, nil
	}
	return LAN{}, fmt.Errorf("find the LAN: %w", errors.Join(errs...))
}

func lanForLocalIP(ip net.IP) (LAN, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return LAN{}, fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifi := range ifaces {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
				return LAN{Interface: ifi.Name, Subnet: subnetFor([]net.Addr{a}, netip.Addr{})}, nil
			}
		}
	}
	return LAN{}, fmt.Errorf("no interface holds %s", ip)
}
