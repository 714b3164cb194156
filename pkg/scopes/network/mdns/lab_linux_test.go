package mdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// netns is a network namespace a test created.
type netns struct {
	name string
	fd   int
}

// do runs fn on a thread switched into the namespace, so the sockets fn opens
// and the interfaces it looks up are the namespace's. Goroutines fn starts run
// on other threads, in the test's own namespace, but keep using those sockets.
func (n *netns) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter %s: %w", n.name, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, and the runtime ends it with the goroutine.
		return errors.Join(ferr, fmt.Errorf("leave %s: %w", n.name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

var labs atomic.Int32

// lab returns two LAN sides for a test: two network namespaces joined by a
// veth pair when the test runs as root; else the loopback interface of the
// test's own namespace twice, if it can carry multicast; else it skips the test.
func lab(t *testing.T) (a, b side) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err == nil {
			return vethLab(t)
		}
	}
	lo, err := net.InterfaceByName("lo")
	if err == nil && lo.Flags&net.FlagMulticast != 0 && lo.Flags&net.FlagUp != 0 {
		return loopback(t, *lo)
	}
	t.Skip("no interface to test multicast DNS on: loopback has no MULTICAST flag, and creating network namespaces (ip netns) needs root")
	return side{}, side{}
}

func vethLab(t *testing.T) (a, b side) {
	t.Helper()
	n := labs.Add(1)
	nsA, nsB := fmt.Sprintf("efmdns%d-%da", os.Getpid(), n), fmt.Sprintf("efmdns%d-%db", os.Getpid(), n)
	ifA, ifB := fmt.Sprintf("efm%da", n), fmt.Sprintf("efm%db", n)
	subnet := fmt.Sprintf("10.231.%d", n)
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %s: %w", strings.Join(args, " "), out, err)
		}
		return nil
	}
	for _, ns := range []string{nsA, nsB} {
		if err := ip("netns", "add", ns); err != nil {
			t.Skipf("cannot create a network namespace, so no multicast DNS test: %v", err)
		}
		t.Cleanup(func() { _ = ip("netns", "del", ns) })
	}
	steps := [][]string{
		{"link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB},
		{"-n", nsA, "addr", "add", subnet + ".1/24", "dev", ifA},
		{"-n", nsB, "addr", "add", subnet + ".2/24", "dev", ifB},
		{"-n", nsA, "link", "set", ifA, "up"},
		{"-n", nsB, "link", "set", ifB, "up"},
		{"-n", nsA, "link", "set", "lo", "up"},
		{"-n", nsB, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	open := func(ns, ifname, addr string) side {
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		n := &netns{name: ns, fd: fd}
		s := side{name: ns, ns: ns, inNet: n.do, addr: addr, addrs: []netip.Addr{netip.MustParseAddr(addr)}}
		err = n.do(func() error {
			ifi, err := net.InterfaceByName(ifname)
			if err == nil {
				s.ifaces = []net.Interface{*ifi}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return open(nsA, ifA, subnet+".1"), open(nsB, ifB, subnet+".2")
}
