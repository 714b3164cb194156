package proximity

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestClientUpdateErrors(t *testing.T) {
	c, err := NewClient(Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	other := NewCoordinate(Config{})
	nan := NewCoordinate(Config{})
	nan.Vec[0] = math.NaN()
	tests := []struct {
		name    string
		other   Coordinate
		rtt     time.Duration
		wantErr string
	}{
		{"negative RTT", other, -time.Millisecond, "out of range"},
		{"RTT too long", other, MaxRTT + 1, "out of range"},
		{"other dimensionality", NewCoordinate(Config{Dimensionality: 3}), time.Millisecond, "dimensionality"},
		{"not finite", nan, time.Millisecond, "non-finite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.Coordinate()
			_, err := c.Update("peer", tt.other, tt.rtt)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Update: error %v, want one containing %q", err, tt.wantErr)
			}
			if after := c.Coordinate(); after.DistanceTo(before) != before.DistanceTo(before) || after.Error != before.Error {
				t.Errorf("a failed Update changed the coordinate: %+v → %+v", before, after)
			}
		})
	}
	if err := c.SetCoordinate(nan); err == nil {
		t.Error("SetCoordinate accepted a NaN coordinate")
	}
}

// TestClientConverges: two clients measuring each other settle near the true RTT.
func TestClientConverges(t *testing.T) {
	a, _ := NewClient(Config{Seed: 1})
	b, _ := NewClient(Config{Seed: 2})
	const rtt = 40 * time.Millisecond
	for range 200 {
		if _, err := a.Update("b", b.Coordinate(), rtt); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Update("a", a.Coordinate(), rtt); err != nil {
			t.Fatal(err)
		}
	}
	est := a.Coordinate().DistanceTo(b.Coordinate())
	if d := est - rtt; d < -4*time.Millisecond || d > 4*time.Millisecond {
		t.Errorf("estimated RTT %v, true %v", est, rtt)
	}
	if e := a.Coordinate().Error; e >= 1.5 {
		t.Errorf("error %v did not drop below its start", e)
	}
}

func TestLatencyFilterTakesTheMedian(t *testing.T) {
	c, _ := NewClient(Config{Seed: 1})
	for _, tt := range []struct {
		rtt  float64
		want float64
	}{
		{0.010, 0.010},
		{0.500, 0.500}, // median of two is the later
		{0.012, 0.012},
		{0.011, 0.012},
		{0.900, 0.012}, // one outlier does not move it
		{0.013, 0.013},
	} {
		if got := c.filter("p", tt.rtt); got != tt.want {
			t.Errorf("filter(%v) = %v, want %v", tt.rtt, got, tt.want)
		}
	}
	c.Forget("p")
	if got := c.filter("p", 0.2); got != 0.2 {
		t.Errorf("after Forget: filter = %v, want 0.2", got)
	}
}

// TestSimulationTwoGroups embeds a synthetic RTT matrix of two far-apart
// groups (a few ms inside each, about 100 ms between them) and checks that
// the coordinates separate the groups and Group splits them.
func TestSimulationTwoGroups(t *testing.T) {
	const perGroup = 10
	r := rand.New(rand.NewPCG(7, 7))
	n := 2 * perGroup
	ids := make([]string, n)
	group := func(i int) int { return i / perGroup }
	for i := range ids {
		ids[i] = string(rune('a'+group(i))) + string(rune('0'+i%perGroup))
	}
	// True RTTs: symmetric, 2–8 ms inside a group, 90–110 ms across.
	truth := make([][]time.Duration, n)
	for i := range truth {
		truth[i] = make([]time.Duration, n)
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			ms := 2 + 6*r.Float64()
			if group(i) != group(j) {
				ms = 90 + 20*r.Float64()
			}
			truth[i][j] = time.Duration(ms * float64(time.Millisecond))
			truth[j][i] = truth[i][j]
		}
	}
	clients := make([]*Client, n)
	for i := range clients {
		var err error
		if clients[i], err = NewClient(Config{Seed: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 { // rounds: every device measures a few random peers, with jitter
		for i := range n {
			for range 3 {
				j := r.IntN(n - 1)
				if j >= i {
					j++
				}
				rtt := time.Duration(float64(truth[i][j]) * (1 + 0.1*r.Float64()))
				if _, err := clients[i].Update(ids[j], clients[j].Coordinate(), rtt); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	var maxInside, minAcross time.Duration = 0, time.Hour
	for i := range n {
		for j := i + 1; j < n; j++ {
			d := clients[i].Coordinate().DistanceTo(clients[j].Coordinate())
			if group(i) == group(j) {
				maxInside = max(maxInside, d)
			} else {
				minAcross = min(minAcross, d)
			}
		}
	}
	t.Logf("estimated RTT: at most %v inside a group, at least %v across", maxInside, minAcross)
	if maxInside > 25*time.Millisecond || minAcross < 60*time.Millisecond {
		t.Errorf("groups not separated: inside ≤ %v, across ≥ %v", maxInside, minAcross)
	}

	devices := make([]Device, n)
	for i := range devices {
		coord := clients[i].Coordinate()
		devices[i] = Device{ID: ids[i], Coordinate: &coord}
	}
	clusters, unplaced, err := Group(devices, GroupConfig{RTT: 40 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(clusters) != 2 || len(unplaced) != 0 {
		t.Fatalf("Group: %+v, unplaced %v; want two clusters", clusters, unplaced)
	}
	for _, c := range clusters {
		for _, m := range c.Members {
			if m[0] != c.Seed[0] {
				t.Errorf("cluster %s (seed %s) holds %s of the other group", c.ID, c.Seed, m)
			}
		}
	}
}

func TestCoordinateDistance(t *testing.T) {
	a := Coordinate{Vec: []float64{0, 0}, Height: 0.001}
	b := Coordinate{Vec: []float64{0.003, 0.004}, Height: 0.002}
	if got, want := a.DistanceTo(b), 8*time.Millisecond; got != want { // 5 ms apart + heights
		t.Errorf("DistanceTo = %v, want %v", got, want)
	}
	b.Adjustment = -0.1 // a negative adjusted distance falls back to the raw one
	if got, want := a.DistanceTo(b), 8*time.Millisecond; got != want {
		t.Errorf("DistanceTo with a large negative adjustment = %v, want %v", got, want)
	}
	if b.DistanceTo(a) != a.DistanceTo(b) {
		t.Error("DistanceTo not symmetric")
	}
}
