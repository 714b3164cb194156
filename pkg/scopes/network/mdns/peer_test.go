package mdns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/grandcat/zeroconf"

	"github.com/edgefabric/edgefabric/pkg/scopes"
)

var fpAcme = scopes.Fingerprint("acme")

func TestParsePeer(t *testing.T) {
	v4 := []net.IP{net.ParseIP("192.168.1.20"), net.ParseIP("192.168.1.20").To4()}
	v6 := []net.IP{net.ParseIP("fe80::1"), net.ParseIP("2001:db8::20")}
	tests := []struct {
		name    string
		txt     []string
		port    int
		want    Peer
		wantErr string
	}{
		{
			name: "all keys",
			txt:  []string{"id=dev-1", "acct=" + fpAcme, "v=1.0.0", "net=3fa9c2e1d0"},
			port: 7001,
			want: Peer{ID: "dev-1", AccountFingerprint: fpAcme, Port: 7001, Version: "1.0.0", NetworkHint: "3fa9c2e1d0",
				Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.20"), netip.MustParseAddr("2001:db8::20")}},
		},
		{
			name: "keys case-insensitive, first occurrence wins, unknown keys ignored",
			txt:  []string{"ID=dev-1", "id=dev-2", "Acct=" + fpAcme, "color=blue", "novalue", "v=a=b"},
			port: 7001,
			want: Peer{ID: "dev-1", AccountFingerprint: fpAcme, Port: 7001, Version: "a=b",
				Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.20"), netip.MustParseAddr("2001:db8::20")}},
		},
		{name: "no id", txt: []string{"acct=" + fpAcme}, port: 7001, wantErr: "id:"},
		{name: "invalid id", txt: []string{"id=Dev 1", "acct=" + fpAcme}, port: 7001, wantErr: "id:"},
		{name: "account name in clear", txt: []string{"id=dev-1", "acct=acme"}, port: 7001, wantErr: "no fingerprint"},
		{name: "16 characters, not hex", txt: []string{"id=dev-1", "acct=acme-industries-"}, port: 7001, wantErr: "no fingerprint"},
		{name: "no port", txt: []string{"id=dev-1", "acct=" + fpAcme}, port: 0, wantErr: "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePeer(tt.txt, tt.port, v4, v6)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("ParsePeer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTXT(t *testing.T) {
	tests := []struct {
		version, hint string
		want          []string
	}{
		{"1.0.0", "3fa9c2e1d0", []string{"id=dev-1", "acct=" + fpAcme, "v=1.0.0", "net=3fa9c2e1d0"}},
		{"", "", []string{"id=dev-1", "acct=" + fpAcme}},
	}
	for _, tt := range tests {
		got := TXT("dev-1", fpAcme, tt.version, tt.hint)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("TXT(%q, %q) (-want +got):\n%s", tt.version, tt.hint, diff)
		}
		p, err := ParsePeer(got, 1, nil, nil)
		if err != nil || p.ID != "dev-1" || p.Version != tt.version || p.NetworkHint != tt.hint {
			t.Errorf("ParsePeer(TXT(...)) = %+v, %v", p, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{DeviceID: "dev-1", Account: "acme", Port: 7001}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "minimal", edit: func(*Config) {}},
		{name: "no device", edit: func(c *Config) { c.DeviceID = "" }, wantErr: "device ID"},
		{name: "no account", edit: func(c *Config) { c.Account = "" }, wantErr: "account"},
		{name: "no port", edit: func(c *Config) { c.Port = 0 }, wantErr: "port"},
		{name: "TTL too short", edit: func(c *Config) { c.BrowseInterval, c.PeerTTL = time.Second, time.Second }, wantErr: "PeerTTL"},
		{name: "long version", edit: func(c *Config) { c.Version = strings.Repeat("x", 300) }, wantErr: "TXT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	if c := ok.withDefaults(); c.BrowseInterval != DefaultBrowseInterval || c.PeerTTL != 3*DefaultBrowseInterval+5*time.Second {
		t.Errorf("defaults: %v, %v", c.BrowseInterval, c.PeerTTL)
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("d", 63)
	tests := []struct{ id, instance, host string }{
		{"dev-1", "dev-1", "ef-dev-1"},
		{"dev-1.site", `dev-1\.site`, "ef-dev-1-site"},
		{long, long, ""}, // hashed down to one label
	}
	for _, tt := range tests {
		if got := instanceName(tt.id); got != tt.instance {
			t.Errorf("instanceName(%q) = %q, want %q", tt.id, got, tt.instance)
		}
		got := hostName(tt.id)
		if len(got) > 63 || !strings.HasPrefix(got, "ef-") {
			t.Errorf("hostName(%q) = %q: not one label", tt.id, got)
		}
		if tt.host != "" && got != tt.host {
			t.Errorf("hostName(%q) = %q, want %q", tt.id, got, tt.host)
		}
	}
}

// TestSeenAndExpire drives the browse bookkeeping without a network.
func TestSeenAndExpire(t *testing.T) {
	var events []Event
	d, err := New(Config{DeviceID: "dev-a", Account: "acme", Port: 7001, BrowseInterval: time.Second, PeerTTL: 3 * time.Second,
		OnEvent: func(ev Event) { events = append(events, ev) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(txt ...string) *zeroconf.ServiceEntry {
		e := zeroconf.NewServiceEntry("x", Service, Domain)
		e.Port, e.Text, e.AddrIPv4 = 7002, txt, []net.IP{net.ParseIP("10.0.0.2")}
		return e
	}
	t0 := time.Unix(1000, 0)
	b := entry("id=dev-b", "acct="+fpAcme, "net=n1")
	d.seen(b, t0)
	d.seen(entry("id=dev-a", "acct="+fpAcme), t0)                       // itself
	d.seen(entry("id=dev-c", "acct="+scopes.Fingerprint("globex")), t0) // another account
	d.seen(entry("acct="+fpAcme), t0)                                   // malformed
	d.seen(b, t0.Add(time.Second))
	d.seen(entry("id=dev-b", "acct="+fpAcme, "net=n2"), t0.Add(2*time.Second))
	d.expire(t0.Add(4 * time.Second))
	if got := ids(d.Peers()); len(got) != 1 || got[0] != "dev-b" {
		t.Errorf("peers after 4s: %v, want [dev-b]", got)
	}
	d.expire(t0.Add(5 * time.Second))

	type brief struct {
		Type     EventType
		ID, Hint string
		Changed  bool
		At       time.Duration
	}
	var got []brief
	for _, ev := range events {
		got = append(got, brief{ev.Type, ev.Peer.ID, ev.Peer.NetworkHint, ev.Changed, ev.Peer.LastSeen.Sub(t0)})
	}
	want := []brief{
		{PeerSeen, "dev-b", "n1", true, 0},
		{PeerSeen, "dev-b", "n1", false, time.Second},
		{PeerSeen, "dev-b", "n2", true, 2 * time.Second},
		{PeerExpired, "dev-b", "n2", false, 2 * time.Second},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(d.Peers()) != 0 {
		t.Errorf("peers after expiry: %v", d.Peers())
	}
}

func TestAnnounceAddrsLoopback(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no interface lo")
	}
	got, err := announceAddrs([]net.Interface{*lo})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[0] != "127.0.0.1" {
		t.Errorf("announceAddrs(lo) = %v, want 127.0.0.1 first", got)
	}
}

// TestPeerTableBounded floods the table with announcements of distinct
// devices: it holds MaxPeers, those it knows stay and are refreshed, and a
// newcomer gets in once one has expired.
func TestPeerTableBounded(t *testing.T) {
	d, err := New(Config{DeviceID: "dev-a", Account: "acme", Port: 7001, BrowseInterval: time.Second, PeerTTL: 3 * time.Second, MaxPeers: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(id string) *zeroconf.ServiceEntry {
		e := zeroconf.NewServiceEntry(id, Service, Domain)
		e.Port, e.Text, e.AddrIPv4 = 7002, []string{"id=" + id, "acct=" + fpAcme}, []net.IP{net.ParseIP("10.0.0.2")}
		return e
	}
	t0 := time.Unix(1000, 0)
	for i := range 1000 {
		d.seen(entry(fmt.Sprintf("fake-%03d", i)), t0)
	}
	if got := ids(d.Peers()); !slices.Equal(got, []string{"fake-000", "fake-001", "fake-002", "fake-003"}) {
		t.Fatalf("peers after a flood: %v, want the first 4", got)
	}
	d.seen(entry("fake-001"), t0.Add(2*time.Second)) // a known peer, refreshed
	d.expire(t0.Add(4 * time.Second))
	d.seen(entry("real"), t0.Add(4*time.Second))
	if got := ids(d.Peers()); !slices.Equal(got, []string{"fake-001", "real"}) {
		t.Errorf("peers after expiry: %v, want [fake-001 real]", got)
	}
}

func TestParsePeerBounded(t *testing.T) {
	var v4 []net.IP
	for i := range 200 {
		v4 = append(v4, net.IPv4(10, 0, byte(i), 1))
	}
	p, err := ParsePeer([]string{"id=dev-1", "acct=" + fpAcme}, 7001, v4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Addrs) != MaxAddrs {
		t.Errorf("got %d addresses, want %d", len(p.Addrs), MaxAddrs)
	}
	if _, err := ParsePeer([]string{"id=dev-1", "acct=" + fpAcme, "v=" + strings.Repeat("v", 1000)}, 7001, v4, nil); err == nil {
		t.Error("a version of 1000 bytes: accepted")
	}
}

// FuzzParsePeer parses arbitrary TXT records and addresses: it never panics,
// and what it accepts is within bounds and valid.
func FuzzParsePeer(f *testing.F) {
	f.Add("id=dev-1\x00acct="+fpAcme+"\x00v=1.0.0\x00net=3fa9c2e1d0", 7001, []byte{192, 168, 1, 20}, []byte(net.ParseIP("2001:db8::20")))
	f.Add("ID=dev-1\x00id=dev-2\x00Acct="+fpAcme+"\x00novalue\x00=x", 1, []byte{}, []byte(net.ParseIP("fe80::1")))
	f.Add("id=\x00acct=", -1, []byte{1, 2, 3}, []byte{})
	f.Fuzz(func(t *testing.T, txt string, port int, v4, v6 []byte) {
		var ips4, ips6 []net.IP
		for len(v4) >= 4 {
			ips4, v4 = append(ips4, net.IP(v4[:4])), v4[4:]
		}
		for len(v6) >= 16 {
			ips6, v6 = append(ips6, net.IP(v6[:16])), v6[16:]
		}
		if len(v6) > 0 {
			ips6 = append(ips6, net.IP(v6)) // a malformed one
		}
		p, err := ParsePeer(strings.Split(txt, "\x00"), port, ips4, ips6)
		if err != nil {
			return
		}
		if p.Port < 1 || p.Port > 65535 || len(p.Addrs) > MaxAddrs || len(p.Version) > maxTXT || len(p.NetworkHint) > maxTXT || !isFingerprint(p.AccountFingerprint) {
			t.Fatalf("ParsePeer accepted %+v", p)
		}
		for _, a := range p.Addrs {
			if !a.IsValid() || (a.Is6() && a.IsLinkLocalUnicast()) {
				t.Fatalf("ParsePeer kept address %v", a)
			}
		}
	})
}
