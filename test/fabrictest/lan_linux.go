package fabrictest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// LAN is a link-local network of agents: a Linux bridge on the host, and each
// agent in its own network namespace with a veth into the bridge. Multicast
// (mDNS) stays within the bridge. The agents reach the hub and the registry at
// the same 127.0.0.1 addresses as agents on the host, through proxies that
// listen inside each namespace: cutting the LAN's uplink closes them.
//
// Names are unique per test process (they hold its PID) and everything is
// removed when the test ends. LANs need root; NeedLANs skips the test without.
type LAN struct {
	f      *Fabric
	Index  int
	Bridge string
	Subnet string // e.g. 10.123.1 (a /24)

	mu      sync.Mutex
	proxies []*Proxy
	cut     bool
	agents  []*Agent
}

var lanSeq, nsSeq atomic.Int32

// NeedLANs skips the test unless it runs as root with iproute2.
func NeedLANs(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("LANs of agents need network namespaces: run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("LANs of agents need iproute2's ip")
	}
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// StartLAN creates a new LAN (a bridge whose host address is the gateway).
func (f *Fabric) StartLAN() *LAN {
	f.t.Helper()
	NeedLANs(f.t)
	n := int(lanSeq.Add(1))
	pid := os.Getpid() % 100000
	l := &LAN{
		f: f, Index: n,
		Bridge: fmt.Sprintf("eb%d-%d", pid, n),
		Subnet: fmt.Sprintf("10.%d.%d", 100+pid%100, n),
	}
	if err := ipCmd("link", "add", l.Bridge, "type", "bridge"); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = ipCmd("link", "del", l.Bridge) })
	for _, s := range [][]string{
		{"addr", "add", l.Subnet + ".1/24", "dev", l.Bridge},
		{"link", "set", l.Bridge, "up"},
	} {
		if err := ipCmd(s...); err != nil {
			f.t.Fatal(err)
		}
	}
	return l
}

// StartAgent starts an agent in a new network namespace on the LAN, with
// the fabric's usual flags (see AgentArgs) followed by extra, which win
// (e.g. --token for another account).
func (l *LAN) StartAgent(id string, extra ...string) *Agent {
	a := l.PrepareAgent(id, extra...)
	l.RestartAgent(a)
	return a
}

// PrepareAgent sets up an agent's network namespace as StartAgent does but
// does not start it: RestartAgent does, so that many agents can be started
// together.
func (l *LAN) PrepareAgent(id string, extra ...string) *Agent {
	f := l.f
	f.t.Helper()
	k := int(nsSeq.Add(1))
	pid := os.Getpid() % 100000
	ns := fmt.Sprintf("ef%d-%s", pid, id)
	veth, peer := fmt.Sprintf("ev%d-%d", pid, k), fmt.Sprintf("ep%d-%d", pid, k)
	addr := fmt.Sprintf("%s.%d", l.Subnet, 10+k)
	if err := ipCmd("netns", "add", ns); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = ipCmd("netns", "del", ns) })
	if err := ipCmd("link", "add", veth, "type", "veth", "peer", "name", peer, "netns", ns); err != nil {
		f.t.Fatal(err)
	}
	// A namespace outlives its deletion while sockets in it linger; the pair
	// goes with its host end at once.
	f.t.Cleanup(func() { _ = ipCmd("link", "del", veth) })
	for _, s := range [][]string{
		{"link", "set", veth, "master", l.Bridge},
		{"link", "set", veth, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "set", peer, "name", "eth0"},
		{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", l.Subnet + ".1"},
	} {
		if err := ipCmd(s...); err != nil {
			f.t.Fatal(err)
		}
	}
	// The hub and the registry, at the addresses agents on the host use.
	for _, target := range []string{f.AgentHub, f.Registry} {
		p := &Proxy{addr: target, target: target, listen: inNetns(ns)}
		if err := p.Restore(); err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(p.Cut)
		l.mu.Lock()
		l.proxies = append(l.proxies, p)
		cut := l.cut
		l.mu.Unlock()
		if cut {
			p.Cut()
		}
	}
	dir := filepath.Join(f.dataDir, id)
	args := append(f.AgentArgs(id, dir), extra...)
	a := &Agent{ID: id, DataDir: dir, Args: append([]string{"netns", "exec", ns, f.agentBin}, args...), Netns: ns}
	l.mu.Lock()
	l.agents = append(l.agents, a)
	l.mu.Unlock()
	return a
}

// Gateway is the address of the LAN's gateway (the bridge's own).
func (l *LAN) Gateway() string { return l.Subnet + ".1" }

// SetGatewayMAC puts the gateway into every agent's neighbour table with
// hardware address mac, as traffic to the gateway would (the hub and the
// registry are reached through proxies inside each namespace, so nothing
// else does), or as a router swapped for another would.
func (l *LAN) SetGatewayMAC(mac string) {
	l.f.t.Helper()
	l.mu.Lock()
	agents := slices.Clone(l.agents)
	l.mu.Unlock()
	for _, a := range agents {
		if err := ipCmd("-n", a.Netns, "neigh", "replace", l.Gateway(), "lladdr", mac, "dev", "eth0", "nud", "permanent"); err != nil {
			l.f.t.Fatal(err)
		}
	}
}

// RestartAgent starts a stopped (or prepared) agent of a LAN, with the same flags.
func (l *LAN) RestartAgent(a *Agent) {
	l.f.t.Helper()
	p := l.f.start("agent-"+a.ID, "ip", a.Args...)
	l.f.mu.Lock()
	a.Proc = p
	l.f.agents[a.ID] = a
	l.f.mu.Unlock()
}

// CutUplink cuts the LAN off the hub and the registry: their connections
// close and new ones are refused. The LAN itself keeps working.
func (l *LAN) CutUplink() {
	l.mu.Lock()
	l.cut = true
	ps := append([]*Proxy(nil), l.proxies...)
	l.mu.Unlock()
	for _, p := range ps {
		p.Cut()
	}
}

// RestoreUplink undoes CutUplink.
func (l *LAN) RestoreUplink() {
	l.f.t.Helper()
	l.mu.Lock()
	l.cut = false
	ps := append([]*Proxy(nil), l.proxies...)
	l.mu.Unlock()
	for _, p := range ps {
		if err := p.Restore(); err != nil {
			l.f.t.Fatal(err)
		}
	}
}

// inNetns returns a listen function that opens its listener inside the
// network namespace ns; the listener keeps working from any goroutine.
func inNetns(ns string) func(network, addr string) (net.Listener, error) {
	return func(network, addr string) (net.Listener, error) {
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", ns, err)
		}
		defer unix.Close(fd)
		type result struct {
			lis net.Listener
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// This goroutine's thread is switched into ns and back; if it
			// cannot come back, it stays locked and the runtime ends the
			// thread with the goroutine.
			runtime.LockOSThread()
			orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{err: err}
				return
			}
			defer unix.Close(orig)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				ch <- result{err: fmt.Errorf("enter %s: %w", ns, err)}
				return
			}
			lis, lerr := net.Listen(network, addr)
			if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
				if lis != nil {
					lis.Close()
				}
				ch <- result{err: errors.Join(lerr, fmt.Errorf("leave %s: %w", ns, err))}
				return
			}
			runtime.UnlockOSThread()
			ch <- result{lis: lis, err: lerr}
		}()
		r := <-ch
		return r.lis, r.err
	}
}
