package proximity

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// at returns a device whose coordinate sits x milliseconds along a line.
func at(id string, x float64) Device {
	return Device{ID: id, Coordinate: &Coordinate{Vec: []float64{x / 1000, 0}}}
}

func placed(id string, lat, long float64) Device {
	return Device{ID: id, Location: Location{Point: &Point{lat, long}}}
}

func region(id, r string) Device { return Device{ID: id, Location: Location{Region: r}} }

// brief is a cluster as the tests write it: seed and members; IDs are checked apart.
type brief struct {
	Seed    string
	Members string
}

func briefs(cs []Cluster) []brief {
	out := make([]brief, len(cs))
	for i, c := range cs {
		out[i] = brief{c.Seed, strings.Join(c.Members, " ")}
	}
	slices.SortFunc(out, func(a, b brief) int { return strings.Compare(a.Seed, b.Seed) })
	return out
}

func TestGroup(t *testing.T) {
	rtt := GroupConfig{RTT: 10 * time.Millisecond}
	tests := []struct {
		name     string
		devices  []Device
		cfg      GroupConfig
		want     []brief
		unplaced []string
	}{
		{
			name:    "seeds in ID order, members join the nearest seed in range",
			devices: []Device{at("d", 20), at("a", 0), at("c", 12), at("b", 8), at("e", 30)},
			cfg:     rtt,
			want:    []brief{{"a", "a b"}, {"c", "c d"}, {"e", "e"}},
		},
		{
			name:    "kilometres between points, RTT otherwise, regions last",
			devices: []Device{placed("berlin", 52.52, 13.405), placed("potsdam", 52.39, 13.06), placed("paris", 48.86, 2.35), at("x", 0), at("y", 5), region("r1", "eu-west"), region("r2", "eu-west"), region("r3", "us-east")},
			cfg:     GroupConfig{RTT: 10 * time.Millisecond, Km: 50},
			want:    []brief{{"berlin", "berlin potsdam"}, {"paris", "paris"}, {"r1", "r1 r2"}, {"r3", "r3"}, {"x", "x y"}},
		},
		{
			name:     "no measure usable",
			devices:  []Device{{ID: "bare"}, placed("p", 1, 1), at("x", 0)},
			cfg:      GroupConfig{RTT: 10 * time.Millisecond},
			want:     []brief{{"x", "x"}},
			unplaced: []string{"bare", "p"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unplaced, err := Group(tt.devices, tt.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, briefs(got)); diff != "" {
				t.Errorf("clusters (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.unplaced, unplaced); diff != "" {
				t.Errorf("unplaced (-want +got):\n%s", diff)
			}
			for _, c := range got {
				if len(c.ID) != IDLength || c.ID != clusterID(c.Seed) {
					t.Errorf("cluster %+v: ID is not the hash of its seed", c)
				}
			}
			rev := slices.Clone(tt.devices)
			slices.Reverse(rev)
			again, _, _ := Group(rev, tt.cfg, nil)
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("Group depends on the order of devices (-first +reversed):\n%s", diff)
			}
		})
	}
}

// TestGroupStable walks an account through joins and leaves, each step fed
// the previous result, and checks who moved and which IDs survived.
func TestGroupStable(t *testing.T) {
	cfg := GroupConfig{RTT: 10 * time.Millisecond}
	steps := []struct {
		name    string
		devices []Device
		want    []brief
	}{
		{
			name:    "start",
			devices: []Device{at("m", 0), at("n", 6), at("p", 9), at("x", 50), at("y", 55)},
			want:    []brief{{"m", "m n p"}, {"x", "x y"}},
		},
		{
			name:    "a device with a lower ID joins between: no seed changes",
			devices: []Device{at("a", 4), at("m", 0), at("n", 6), at("p", 9), at("x", 50), at("y", 55)},
			want:    []brief{{"m", "a m n p"}, {"x", "x y"}},
		},
		{
			name:    "a member leaves: nothing else moves",
			devices: []Device{at("a", 4), at("m", 0), at("p", 9), at("x", 50), at("y", 55)},
			want:    []brief{{"m", "a m p"}, {"x", "x y"}},
		},
		{
			name:    "the seed leaves: the lowest member succeeds, members out of its range move",
			devices: []Device{at("a", 4), at("p", 18), at("x", 50), at("y", 55)},
			want:    []brief{{"a", "a"}, {"p", "p"}, {"x", "x y"}},
		},
		{
			name:    "a device drifts a little beyond the radius: stickiness keeps it",
			devices: []Device{at("a", 4), at("p", 18), at("x", 50), at("y", 61)},
			want:    []brief{{"a", "a"}, {"p", "p"}, {"x", "x y"}},
		},
		{
			name:    "and far beyond: it moves",
			devices: []Device{at("a", 4), at("p", 18), at("x", 50), at("y", 70)},
			want:    []brief{{"a", "a"}, {"p", "p"}, {"x", "x"}, {"y", "y"}},
		},
	}
	var prev []Cluster
	for _, s := range steps {
		got, _, err := Group(s.devices, cfg, prev)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s.want, briefs(got)); diff != "" {
			t.Fatalf("%s: clusters (-want +got):\n%s", s.name, diff)
		}
		for _, c := range got {
			for _, p := range prev {
				if p.ID == c.ID && !slices.Contains(p.Members, c.Seed) {
					t.Errorf("%s: cluster %s moved to a seed %s that was not a member", s.name, c.ID, c.Seed)
				}
			}
		}
		prev = got
	}
	// The cluster first seeded by m lives on under seed a with m's ID.
	for _, c := range prev {
		if c.Seed == "a" && c.ID != clusterID("m") {
			t.Errorf("a's cluster has ID %s, want m's %s", c.ID, clusterID("m"))
		}
	}
}

func TestGroupConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg     GroupConfig
		wantErr bool
	}{
		{GroupConfig{RTT: time.Millisecond}, false},
		{GroupConfig{Km: 10, Stickiness: 1}, false},
		{GroupConfig{}, true},
		{GroupConfig{RTT: -1}, true},
		{GroupConfig{Km: 10, Stickiness: 0.5}, true},
	} {
		_, _, err := Group(nil, tt.cfg, nil)
		if (err != nil) != tt.wantErr {
			t.Errorf("Group with %+v: error %v, want error %v", tt.cfg, err, tt.wantErr)
		}
	}
}
