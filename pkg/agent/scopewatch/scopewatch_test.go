package scopewatch

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/pkg/scopes/network/mdns"
)

func TestRoundPeers(t *testing.T) {
	var peers []mdns.Peer
	for i := range 10 {
		peers = append(peers, mdns.Peer{ID: fmt.Sprintf("p%d", i)})
	}
	peers = append(peers, mdns.Peer{ID: "self"})
	known := func(id string) bool { return id == "p7" || id == "p8" }
	ids := func(ps []mdns.Peer) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	tests := []struct {
		limit, start int
		want         []string
	}{
		{limit: 4, start: 0, want: []string{"p7", "p8", "p0", "p1"}},
		{limit: 4, start: 2, want: []string{"p7", "p8", "p2", "p3"}},
		{limit: 4, start: 7, want: []string{"p7", "p8", "p9", "p0"}}, // wraps around
		{limit: 4, start: 8 + 4*1000, want: []string{"p7", "p8", "p0", "p1"}},
		{limit: 4, start: -1, want: []string{"p7", "p8", "p9", "p0"}},
		{limit: 1, start: 0, want: []string{"p7"}},
		{limit: 100, start: 3, want: []string{"p7", "p8", "p3", "p4", "p5", "p6", "p9", "p0", "p1", "p2"}},
	}
	for _, tt := range tests {
		got := ids(roundPeers(peers, "self", known, tt.limit, tt.start))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("roundPeers(limit %d, start %d) (-want +got):\n%s", tt.limit, tt.start, diff)
		}
	}
}
