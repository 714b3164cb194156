package fabric_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/scopes"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
)

// dev is a device of account on the LAN claiming claim that verified peers.
func dev(account, id, claim string, peers ...string) fabric.Device {
	sc := &hubv1.Scopes{NetworkId: claim}
	for _, p := range peers {
		sc.Peers = append(sc.Peers, &hubv1.LANPeer{DeviceId: p})
	}
	return fabric.Device{Device: identity.Device{Account: account, ID: id}, Online: true, Scopes: sc}
}

// explicit marks d's claim as the operator's --network.
func explicit(d fabric.Device) fabric.Device {
	d.Scopes.NetworkExplicit = true
	return d
}

// discovering marks d as still discovering its LAN.
func discovering(d fabric.Device) fabric.Device {
	d.Scopes.Discovering = true
	return d
}

// names maps clusters to "node name: members" lines, easy to compare.
func names(cs []fabric.Cluster) map[string][]string {
	out := map[string][]string{}
	for _, c := range cs {
		out[c.NodeName()] = c.Members
	}
	return out
}

func TestClusters(t *testing.T) {
	lan1, lan2 := "aaaaaaaaaa", "bbbbbbbbbb"
	tests := []struct {
		name    string
		devices []fabric.Device
		cfg     fabric.ClusterConfig
		want    map[string][]string
	}{{
		name: "two LANs of one account, another account on LAN 1",
		devices: []fabric.Device{
			dev("a", "a1", lan1, "a2", "a3"), dev("a", "a2", lan1, "a1"), dev("a", "a3", lan1, "a1"),
			dev("a", "a4", lan2, "a5"), dev("a", "a5", lan2, "a4"), dev("a", "a6", lan2, "a5"),
			dev("b", "b1", lan1),
		},
		want: map[string][]string{
			"edge-a":             {"a1", "a2", "a3", "a4", "a5", "a6"},
			"edge-a-net-" + lan1: {"a1", "a2", "a3"},
			"edge-a-net-" + lan2: {"a4", "a5", "a6"},
			"edge-b":             {"b1"},
			"edge-b-net-" + lan1: {"b1"},
		},
	}, {
		name: "a device that reports nothing is only in its account cluster",
		devices: []fabric.Device{
			dev("a", "a1", lan1), {Device: identity.Device{Account: "a", ID: "a2"}, Online: true},
		},
		want: map[string][]string{"edge-a": {"a1", "a2"}, "edge-a-net-" + lan1: {"a1"}},
	}, {
		name: "a device still discovering its LAN is in no network cluster yet",
		devices: []fabric.Device{
			dev("a", "a1", lan1, "a2"), dev("a", "a2", lan1, "a1"), discovering(dev("a", "a3", lan1)),
		},
		want: map[string][]string{"edge-a": {"a1", "a2", "a3"}, "edge-a-net-" + lan1: {"a1", "a2"}},
	}, {
		name:    "an operator's network name",
		devices: []fabric.Device{explicit(dev("a", "a1", "shop", "a2")), dev("a", "a2", lan1, "a1")},
		cfg:     fabric.ClusterConfig{Scopes: []scopes.Scope{scopes.Network}},
		want:    map[string][]string{"edge-a-net-shop": {"a1", "a2"}},
	}, {
		name: "proximity by regions",
		devices: []fabric.Device{
			{Device: identity.Device{Account: "a", ID: "a1"}, Scopes: &hubv1.Scopes{Region: "north"}},
			{Device: identity.Device{Account: "a", ID: "a2"}, Scopes: &hubv1.Scopes{Region: "north"}},
			{Device: identity.Device{Account: "a", ID: "a3"}, Scopes: &hubv1.Scopes{Region: "south"}},
		},
		cfg: fabric.ClusterConfig{Scopes: []scopes.Scope{scopes.Proximity}, Proximity: proximity.GroupConfig{Km: 10}},
		want: map[string][]string{
			"edge-a-prox-" + proxID("a1"): {"a1", "a2"},
			"edge-a-prox-" + proxID("a3"): {"a3"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(fabric.Clusters(tt.devices, tt.cfg, nil))
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("clusters (-want +got):\n%s", d)
			}
		})
	}
}

// proxID is the ID of the proximity cluster seeded by device id.
func proxID(id string) string {
	cs, _, err := proximity.Group([]proximity.Device{{ID: id, Location: proximity.Location{Region: "r"}}}, proximity.GroupConfig{Km: 1}, nil)
	if err != nil || len(cs) != 1 {
		panic("proximity.Group")
	}
	return cs[0].ID
}

// TestClustersStableNames checks that a network cluster keeps its node name
// while devices join and leave, even when a newcomer claims another ID.
func TestClustersStableNames(t *testing.T) {
	cfg := fabric.ClusterConfig{Scopes: []scopes.Scope{scopes.Network}}
	steps := []struct {
		name    string
		devices []fabric.Device
		want    map[string][]string
	}{{
		name:    "two devices of LAN x",
		devices: []fabric.Device{dev("a", "d1", "xxxxxxxxxx", "d2"), dev("a", "d2", "xxxxxxxxxx", "d1")},
		want:    map[string][]string{"edge-a-net-xxxxxxxxxx": {"d1", "d2"}},
	}, {
		name: "three newcomers that derive another ID join",
		devices: []fabric.Device{
			dev("a", "d1", "xxxxxxxxxx", "d2"), dev("a", "d2", "xxxxxxxxxx", "d1", "d3"),
			dev("a", "d3", "yyyyyyyyyy", "d2"), dev("a", "d4", "yyyyyyyyyy", "d3"), dev("a", "d5", "yyyyyyyyyy", "d4"),
		},
		want: map[string][]string{"edge-a-net-xxxxxxxxxx": {"d1", "d2", "d3", "d4", "d5"}},
	}, {
		name: "d1 leaves",
		devices: []fabric.Device{
			dev("a", "d2", "xxxxxxxxxx", "d3"),
			dev("a", "d3", "yyyyyyyyyy", "d2"), dev("a", "d4", "yyyyyyyyyy", "d3"), dev("a", "d5", "yyyyyyyyyy", "d4"),
		},
		want: map[string][]string{"edge-a-net-xxxxxxxxxx": {"d2", "d3", "d4", "d5"}},
	}}
	var prev []fabric.Cluster
	for _, s := range steps {
		got := fabric.Clusters(s.devices, cfg, prev)
		if d := cmp.Diff(s.want, names(got)); d != "" {
			t.Fatalf("%s: clusters (-want +got):\n%s", s.name, d)
		}
		// The same inputs in another order give the same clusters.
		rev := append([]fabric.Device(nil), s.devices...)
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		if d := cmp.Diff(names(got), names(fabric.Clusters(rev, cfg, prev))); d != "" {
			t.Fatalf("%s: order changes the clusters (-first +reversed):\n%s", s.name, d)
		}
		prev = got
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      string
		want    []scopes.Scope
		wantErr bool
	}{
		{in: "network,account", want: []scopes.Scope{scopes.Network, scopes.Account}},
		{in: " proximity , network,proximity", want: []scopes.Scope{scopes.Proximity, scopes.Network}},
		{in: "", wantErr: true},
		{in: "network,galaxy", wantErr: true},
	}
	for _, tt := range tests {
		got, err := fabric.ParseScopes(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseScopes(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("ParseScopes(%q) (-want +got):\n%s", tt.in, d)
		}
	}
}
