package mdns

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/edgefabric/edgefabric/pkg/scopes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// side is one LAN side of a test: where its agents open sockets.
type side struct {
	name   string
	ns     string // network namespace, "" for the test's own
	inNet  func(func() error) error
	ifaces []net.Interface
	addr   string       // the side's IPv4 address
	addrs  []netip.Addr // every address its agents announce
}

func direct(fn func() error) error { return fn() }

// loopback returns a side on the loopback interface lo of the test's own
// network namespace; both sides of a test are then the same.
func loopback(t *testing.T, lo net.Interface) (a, b side) {
	t.Helper()
	strs, err := announceAddrs([]net.Interface{lo})
	if err != nil {
		t.Fatal(err)
	}
	s := side{name: lo.Name, inNet: direct, ifaces: []net.Interface{lo}, addr: "127.0.0.1"}
	for _, a := range strs {
		s.addrs = append(s.addrs, netip.MustParseAddr(a))
	}
	return s, s
}

// agent is a running Discovery.
type agent struct {
	t      *testing.T
	d      *Discovery
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs a Discovery for cfg on s until the test ends.
func start(t *testing.T, s side, cfg Config) *agent {
	t.Helper()
	a := &agent{t: t, events: make(chan Event, 4096), done: make(chan struct{})}
	cfg.Interfaces = s.ifaces
	cfg.BrowseInterval = 300 * time.Millisecond
	cfg.PeerTTL = 1200 * time.Millisecond
	cfg.OnEvent = func(ev Event) {
		select {
		case a.events <- ev:
		default:
			t.Errorf("%s: event dropped: %+v", cfg.DeviceID, ev)
		}
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("agent", cfg.DeviceID)
	d, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	d.inNet = s.inNet
	a.d = d
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		if err := d.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", cfg.DeviceID, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-a.done })
	return a
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func (a *agent) waitReady() {
	a.t.Helper()
	select {
	case <-a.d.Ready():
	case <-time.After(10 * time.Second):
		a.t.Fatalf("%s not ready after 10s", a.d.cfg.DeviceID)
	}
}

// waitEvent returns the first event match accepts; it fails the test on an
// event about the agent itself or about a device in never.
func (a *agent) waitEvent(what string, match func(Event) bool, never ...string) Event {
	a.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-a.events:
			if ev.Peer.ID == a.d.cfg.DeviceID || contains(never, ev.Peer.ID) {
				a.t.Errorf("%s: unexpected event %v %+v", a.d.cfg.DeviceID, ev.Type, ev.Peer)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			a.t.Fatalf("%s: no event %s within 10s", a.d.cfg.DeviceID, what)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func seen(id string) func(Event) bool {
	return func(ev Event) bool { return ev.Type == PeerSeen && ev.Peer.ID == id }
}

// TestDiscoveryOverMulticast announces and browses over real multicast
// between two LAN sides (two network namespaces joined by a veth pair when
// root, else a multicast-capable loopback).
func TestDiscoveryOverMulticast(t *testing.T) {
	t.Parallel()
	sa, sb := lab(t)
	t.Logf("LAN sides %s and %s", sa.name, sb.name)

	a := start(t, sa, Config{DeviceID: "dev-a", Account: "acme", Port: 7001, Version: "1.2.3", NetworkHint: "lan-a"})
	b := start(t, sb, Config{DeviceID: "dev-b", Account: "acme", Port: 7002, Version: "1.2.4", NetworkHint: "lan-b"})
	c := start(t, sb, Config{DeviceID: "dev-c", Account: "globex", Port: 7003, Version: "1.2.4"})
	e := start(t, sb, Config{DeviceID: "dev-e.site", Account: "acme", Port: 7005}) // a dot in the instance name
	for _, x := range []*agent{a, b, c, e} {
		x.waitReady()
	}

	ev := a.waitEvent("seen dev-b", seen("dev-b"), "dev-c")
	want := Event{Type: PeerSeen, Changed: true, Peer: Peer{
		ID: "dev-b", AccountFingerprint: scopes.Fingerprint("acme"), Addrs: sb.addrs,
		Port: 7002, Version: "1.2.4", NetworkHint: "lan-b",
	}}
	if diff := cmp.Diff(want, ev, cmpopts.EquateComparable(netip.Addr{}), cmpopts.IgnoreFields(Peer{}, "LastSeen")); diff != "" {
		t.Errorf("a's first event about dev-b (-want +got):\n%s", diff)
	}
	if ev.Peer.LastSeen.IsZero() {
		t.Error("LastSeen not set")
	}
	b.waitEvent("seen dev-a", seen("dev-a"), "dev-c")
	a.waitEvent("seen dev-e.site", seen("dev-e.site"), "dev-c")

	// e leaves; b changes its network hint and is announced anew.
	e.cancel()
	b.d.SetNetworkHint("lan-b2")
	a.waitEvent("dev-b's new hint", func(ev Event) bool {
		return seen("dev-b")(ev) && ev.Changed && ev.Peer.NetworkHint == "lan-b2"
	}, "dev-c")
	a.waitEvent("dev-e.site expired", func(ev Event) bool {
		return ev.Type == PeerExpired && ev.Peer.ID == "dev-e.site"
	}, "dev-c")
	if diff := cmp.Diff([]string{"dev-b"}, ids(a.d.Peers())); diff != "" {
		t.Errorf("a's peers (-want +got):\n%s", diff)
	}
	<-e.done // Run returns once the goodbye is sent

	// c, of another account, saw none of acme's agents.
	for {
		select {
		case ev := <-c.events:
			t.Errorf("dev-c saw %v %+v", ev.Type, ev.Peer)
			continue
		default:
		}
		break
	}
}

func ids(ps []Peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}
