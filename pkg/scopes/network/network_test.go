package network

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestID(t *testing.T) {
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	home := LAN{Interface: "wlan0", Subnet: netip.MustParsePrefix("192.168.1.0/24"), Gateway: netip.MustParseAddr("192.168.1.1"), GatewayMAC: mac("aa:bb:cc:00:00:01")}
	homeID := ID(home)
	tests := []struct {
		name string
		lan  LAN
		same bool   // same ID as home
		want string // exact ID, if set
	}{
		{name: "same LAN from another device", lan: LAN{Interface: "eth0", Subnet: netip.MustParsePrefix("192.168.1.77/24"), Gateway: home.Gateway, GatewayMAC: mac("AA:BB:CC:00:00:01")}, same: true},
		{name: "router swapped for one with the same addresses", lan: LAN{Subnet: home.Subnet, Gateway: home.Gateway, GatewayMAC: mac("aa:bb:cc:00:00:99")}, same: true},
		{name: "gateway MAC not in the neighbour table yet", lan: LAN{Subnet: home.Subnet, Gateway: home.Gateway}, same: true},
		{name: "earlier versions' ID before the gateway was known", lan: home, want: hashID("edgefabric-lan:v1|192.168.1.0/24|192.168.1.1|")},
		{name: "other gateway", lan: LAN{Subnet: home.Subnet, Gateway: netip.MustParseAddr("192.168.1.254")}},
		{name: "other subnet", lan: LAN{Subnet: netip.MustParsePrefix("192.168.2.0/24"), Gateway: home.Gateway, GatewayMAC: home.GatewayMAC}},
		{name: "override", lan: LAN{Subnet: home.Subnet, Override: "office"}, want: "office"},
		{name: "override with digits", lan: LAN{Override: "lab-2"}, want: "lab-2"},
		{name: "override hashed when not a short label", lan: LAN{Override: "Main Office"}, want: hashID("edgefabric-net-override:Main Office")},
		{name: "nothing known", lan: LAN{Gateway: home.Gateway}, want: ""},
	}
	if len(homeID) != IDLength || strings.Trim(homeID, "0123456789abcdef") != "" {
		t.Fatalf("ID(home) = %q, want %d lower-case hex digits", homeID, IDLength)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ID(tt.lan)
			switch {
			case tt.want != "" || tt.lan.Subnet == (netip.Prefix{}) && tt.lan.Override == "":
				if got != tt.want {
					t.Errorf("ID = %q, want %q", got, tt.want)
				}
			case tt.same != (got == homeID):
				t.Errorf("ID = %q, home's %q: same = %v, want %v", got, homeID, got == homeID, tt.same)
			}
			if again := ID(tt.lan); again != got {
				t.Errorf("ID not stable: %q then %q", got, again)
			}
		})
	}
}

// TestIDFromChangingNeighbourTables reads one LAN's facts from the kernel's
// tables as they change over a device's life: the gateway missing from the
// neighbour table, then resolving, answered, gone stale, and a router
// swapped for another with the same address. The claim never changes.
func TestIDFromChangingNeighbourTables(t *testing.T) {
	lookup := func(string) ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("192.168.1.20"), Mask: net.CIDRMask(24, 32)}}, nil
	}
	const header = "IP address       HW type     Flags       HW address            Mask     Device\n"
	tables := []struct{ name, arp string }{
		{"empty", header},
		{"incomplete", header + "192.168.1.254    0x1         0x0         00:00:00:00:00:00     *        eth0\n"},
		{"resolved", header + "192.168.1.254    0x1         0x2         aa:bb:cc:00:00:fe     *        eth0\n"},
		{"other hosts only", header + "192.168.1.30     0x1         0x2         aa:bb:cc:00:00:30     *        eth0\n"},
		{"router swapped", header + "192.168.1.254    0x1         0x2         de:ad:be:ef:00:01     *        eth0\n"},
		{"unreadable", ""},
	}
	want := ""
	for _, tt := range tables {
		var arp io.Reader
		if tt.arp != "" {
			arp = strings.NewReader(tt.arp)
		}
		lan, err := lanFromTables(open(t, "testdata/route"), binary.LittleEndian, arp, lookup)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got := ID(lan)
		if want == "" {
			want = got
		}
		if got != want || got == "" {
			t.Errorf("%s: ID %q (gateway MAC %v), want %q as with the first table", tt.name, got, lan.GatewayMAC, want)
		}
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name  string
		views []View
		prev  []Cluster
		want  []Cluster
	}{
		{
			name: "one LAN, one claim",
			views: []View{
				{Device: "b", Claim: "n1", Peers: []string{"a"}},
				{Device: "a", Claim: "n1", Peers: []string{"b", "c"}},
				{Device: "c", Claim: "n1"},
			},
			want: []Cluster{{ID: "n1", Members: []string{"a", "b", "c"}, Claim: "n1"}},
		},
		{
			name: "majority wins, ties in lexical order",
			views: []View{
				{Device: "a", Claim: "n2", Peers: []string{"b"}},
				{Device: "b", Claim: "n1", Peers: []string{"c"}},
				{Device: "c", Claim: "n2"},
				{Device: "x", Claim: "m2", Peers: []string{"y"}},
				{Device: "y", Claim: "m1"},
			},
			want: []Cluster{
				{ID: "m1", Members: []string{"x", "y"}, Claim: "m1"},
				{ID: "n2", Members: []string{"a", "b", "c"}, Claim: "n2"},
			},
		},
		{
			name: "explicit claim beats the majority",
			views: []View{
				{Device: "a", Claim: "n1", Peers: []string{"b", "c"}},
				{Device: "b", Claim: "n1"},
				{Device: "c", Claim: "office", Explicit: true},
			},
			want: []Cluster{{ID: "office", Members: []string{"a", "b", "c"}, Claim: "office"}},
		},
		{
			name: "previous ID kept while claimed, against a new majority",
			views: []View{
				{Device: "a", Claim: "n1", Peers: []string{"b", "c", "d"}},
				{Device: "b", Claim: "n2"},
				{Device: "c", Claim: "n2"},
				{Device: "d", Claim: "n2"},
			},
			prev: []Cluster{{ID: "n1", Members: []string{"a"}}},
			want: []Cluster{{ID: "n1", Members: []string{"a", "b", "c", "d"}, Claim: "n1"}},
		},
		{
			name: "a device that moved does not drag its old ID along",
			views: []View{
				{Device: "laptop", Claim: "n2", Peers: []string{"x"}},
				{Device: "x", Claim: "n2"},
			},
			prev: []Cluster{{ID: "n1", Members: []string{"laptop"}}, {ID: "n2", Members: []string{"x"}}},
			want: []Cluster{{ID: "n2", Members: []string{"laptop", "x"}, Claim: "n2"}},
		},
		{
			name: "two LANs with the same claim stay apart, the smaller renamed",
			views: []View{
				{Device: "a", Claim: "n1", Peers: []string{"b"}},
				{Device: "b", Claim: "n1"},
				{Device: "z", Claim: "n1"},
			},
			want: []Cluster{
				{ID: "n1", Members: []string{"a", "b"}, Claim: "n1"},
				{ID: hashID("edgefabric-net-dup:n1|z"), Members: []string{"z"}, Claim: "n1"},
			},
		},
		{
			name: "a LAN split in two: the larger part keeps the ID",
			views: []View{
				{Device: "a", Claim: "n1"},
				{Device: "b", Claim: "n1", Peers: []string{"c"}},
				{Device: "c", Claim: "n1"},
			},
			prev: []Cluster{{ID: "n1", Members: []string{"a", "b", "c"}}},
			want: []Cluster{
				{ID: "n1", Members: []string{"b", "c"}, Claim: "n1"},
				{ID: hashID("edgefabric-net-dup:n1|a"), Members: []string{"a"}, Claim: "n1"},
			},
		},
		{
			name: "every claim changed with the inputs, the LAN did not: the ID stays",
			views: []View{
				{Device: "a", Claim: "mac-known", Peers: []string{"b", "c"}},
				{Device: "b", Claim: "mac-known"},
				{Device: "c", Claim: "mac-known"},
			},
			prev: []Cluster{{ID: "n1", Members: []string{"a", "b", "c"}, Claim: "n1"}},
			want: []Cluster{{ID: "n1", Members: []string{"a", "b", "c"}, Claim: "n1"}},
		},
		{
			name: "a larger LAN with the same claim does not take the ID of the LAN that has it",
			views: []View{
				{Device: "a", Claim: "n1"},
				{Device: "x", Claim: "n1", Peers: []string{"y", "z"}},
				{Device: "y", Claim: "n1"},
				{Device: "z", Claim: "n1"},
			},
			prev: []Cluster{{ID: "n1", Members: []string{"a"}, Claim: "n1"}},
			want: []Cluster{
				{ID: "n1", Members: []string{"a"}, Claim: "n1"},
				{ID: hashID("edgefabric-net-dup:n1|x"), Members: []string{"x", "y", "z"}, Claim: "n1"},
			},
		},
		{
			name: "a derived ID is kept once the LAN that had the claim is gone",
			views: []View{
				{Device: "x", Claim: "n1", Peers: []string{"y"}},
				{Device: "y", Claim: "n1"},
			},
			prev: []Cluster{{ID: hashID("edgefabric-net-dup:n1|x"), Members: []string{"x", "y"}, Claim: "n1"}},
			want: []Cluster{{ID: hashID("edgefabric-net-dup:n1|x"), Members: []string{"x", "y"}, Claim: "n1"}},
		},
		{
			name: "a known claim beats a larger overlap nobody claims",
			views: []View{
				{Device: "a", Claim: "n2", Peers: []string{"b", "x"}},
				{Device: "b", Claim: "n2"},
				{Device: "x", Claim: "n2"},
			},
			prev: []Cluster{{ID: "old", Members: []string{"a", "b"}, Claim: "old"}, {ID: "n2", Members: []string{"x"}, Claim: "n2"}},
			want: []Cluster{{ID: "n2", Members: []string{"a", "b", "x"}, Claim: "n2"}},
		},
		{
			name:  "a lone device keeps its cluster's ID wherever it goes",
			views: []View{{Device: "laptop", Claim: "cafe"}},
			prev:  []Cluster{{ID: "home", Members: []string{"laptop"}, Claim: "home"}},
			want:  []Cluster{{ID: "home", Members: []string{"laptop"}, Claim: "home"}},
		},
		{
			name: "two clusters that overlap one prev cluster: the one with more of its members keeps it",
			views: []View{
				{Device: "a", Claim: "n1", Peers: []string{"d", "e", "f"}},
				{Device: "b", Claim: "n1", Peers: []string{"c"}},
				{Device: "c", Claim: "n1"},
				{Device: "d", Claim: "n1"},
				{Device: "e", Claim: "n1"},
				{Device: "f", Claim: "n1"},
			},
			prev: []Cluster{{ID: "n1", Members: []string{"a", "b", "c"}}},
			want: []Cluster{
				{ID: "n1", Members: []string{"b", "c"}, Claim: "n1"},
				{ID: hashID("edgefabric-net-dup:n1|a"), Members: []string{"a", "d", "e", "f"}, Claim: "n1"},
			},
		},
		{
			name: "no claims: a derived ID; unknown peers ignored; views of one device combined",
			views: []View{
				{Device: "a", Peers: []string{"ghost"}},
				{Device: "b"},
				{Device: "a", Peers: []string{"b"}},
			},
			want: []Cluster{{ID: hashID("edgefabric-net-dup:|a"), Members: []string{"a", "b"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge(tt.views, tt.prev)
			slices.SortFunc(tt.want, func(a, b Cluster) int { return strings.Compare(a.ID, b.ID) }) // as Merge returns them
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
			// The order of views does not matter.
			rev := make([]View, len(tt.views))
			for i, v := range tt.views {
				rev[len(rev)-1-i] = v
			}
			if diff := cmp.Diff(got, Merge(rev, tt.prev)); diff != "" {
				t.Errorf("Merge of reversed views differs (-first +reversed):\n%s", diff)
			}
		})
	}
}

// TestMergeStableAsDevicesComeAndGo walks a LAN through joins and leaves.
func TestMergeStableAsDevicesComeAndGo(t *testing.T) {
	steps := []struct {
		devices []string // all on one LAN, all seeing each other
		claims  map[string]string
	}{
		{devices: []string{"a"}},
		{devices: []string{"a", "b"}},
		{devices: []string{"b", "c", "d"}},
		{devices: []string{"d"}},
		{devices: []string{"d", "e", "f"}, claims: map[string]string{"e": "other", "f": "other"}},
	}
	var prev []Cluster
	for i, s := range steps {
		var views []View
		for _, d := range s.devices {
			claim := "n1"
			if c, ok := s.claims[d]; ok {
				claim = c
			}
			views = append(views, View{Device: d, Claim: claim, Peers: s.devices})
		}
		got := Merge(views, prev)
		if len(got) != 1 || got[0].ID != "n1" {
			t.Fatalf("step %d: %+v, want one cluster n1", i, got)
		}
		prev = got
	}
}

func TestLANFromTables(t *testing.T) {
	addrs := map[string][]net.Addr{
		"eth0": {
			&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("192.168.1.20"), Mask: net.CIDRMask(24, 32)},
		},
	}
	lookup := func(iface string) ([]net.Addr, error) {
		a, ok := addrs[iface]
		if !ok {
			return nil, errors.New("no such interface")
		}
		return a, nil
	}
	route, arp := open(t, "testdata/route"), open(t, "testdata/arp")
	got, err := lanFromTables(route, binary.LittleEndian, arp, lookup)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("aa:bb:cc:00:00:fe")
	want := LAN{Interface: "eth0", Subnet: netip.MustParsePrefix("192.168.1.0/24"), Gateway: netip.MustParseAddr("192.168.1.254"), GatewayMAC: mac}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("lanFromTables (-want +got):\n%s", diff)
	}

	// Without a neighbour table the MAC stays unknown.
	got, err = lanFromTables(open(t, "testdata/route"), binary.LittleEndian, nil, lookup)
	if err != nil || got.GatewayMAC != nil || got.Gateway != want.Gateway {
		t.Errorf("without arp: %+v, %v", got, err)
	}

	// No default route.
	_, err = lanFromTables(strings.NewReader("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"), binary.LittleEndian, nil, lookup)
	if !errors.Is(err, errNoDefaultRoute) {
		t.Errorf("no default route: error %v, want errNoDefaultRoute", err)
	}
}

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestDiscoverLAN reads this machine's LAN; it only logs when there is none.
func TestDiscoverLAN(t *testing.T) {
	lan, err := DiscoverLAN()
	if err != nil {
		t.Logf("no LAN found: %v", err)
		return
	}
	t.Logf("LAN %+v, ID %q", lan, ID(lan))
	if !lan.Subnet.IsValid() || lan.Interface == "" {
		t.Errorf("DiscoverLAN = %+v: no subnet or interface", lan)
	}
}
