package fabric

import (
	"cmp"
	"slices"
	"time"

	"github.com/edgefabric/edgefabric/pkg/provider/placement"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
)

// Neighbour is a device near another, as Nearest ranks it.
type Neighbour struct {
	Device
	// RTT is the estimated round trip from the asking device; zero if either
	// has no coordinate.
	RTT time.Duration
	// Km is the distance on the ground; -1 if either has no point.
	Km float64
	// Free is the capacity not allocated.
	Free placement.Resources
	// SameNetwork says both claim the same network cluster.
	SameNetwork bool
}

// DefaultNearest is how many devices Nearest returns when limit is 0.
const DefaultNearest = 5

// Nearest ranks the online devices of self's account (self excepted) that
// have at least free unallocated, nearest first: devices of self's network
// first, then by estimated round trip (devices without a coordinate after
// those with one), then by distance on the ground, then by ID. It returns at
// most limit (0: DefaultNearest). Pure: a function of its inputs.
func Nearest(self Device, devices []Device, free placement.Resources, limit int) []Neighbour {
	if limit <= 0 {
		limit = DefaultNearest
	}
	selfCoord, selfPoint := coordinateOf(self), pointOf(self)
	var out []Neighbour
	for _, d := range devices {
		if d.Account != self.Account || d.ID == self.ID || !d.Online {
			continue
		}
		f := placement.Resources{
			CPUMillis:   d.Capacity.CPUMillis - d.Allocated.CPUMillis,
			MemoryBytes: d.Capacity.MemoryBytes - d.Allocated.MemoryBytes,
			Pods:        d.Capacity.Pods - d.Allocated.Pods,
		}
		if f.CPUMillis < free.CPUMillis || f.MemoryBytes < free.MemoryBytes || f.Pods < max(free.Pods, 1) {
			continue
		}
		n := Neighbour{Device: d, Free: f, Km: -1}
		if c := coordinateOf(d); c != nil && selfCoord != nil && c.Compatible(*selfCoord) {
			n.RTT = selfCoord.DistanceTo(*c)
		}
		if p := pointOf(d); p != nil && selfPoint != nil {
			n.Km = selfPoint.DistanceKm(*p)
		}
		n.SameNetwork = self.Scopes.GetNetworkId() != "" && self.Scopes.GetNetworkId() == d.Scopes.GetNetworkId()
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Neighbour) int {
		if a.SameNetwork != b.SameNetwork {
			if a.SameNetwork {
				return -1
			}
			return 1
		}
		if (a.RTT > 0) != (b.RTT > 0) {
			if a.RTT > 0 {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.RTT, b.RTT); c != 0 {
			return c
		}
		if (a.Km >= 0) != (b.Km >= 0) {
			if a.Km >= 0 {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Km, b.Km), cmp.Compare(a.ID, b.ID))
	})
	return out[:min(limit, len(out))]
}

func coordinateOf(d Device) *proximity.Coordinate {
	c := d.Scopes.GetCoordinate()
	if c == nil || len(c.GetVec()) == 0 {
		return nil
	}
	pc := &proximity.Coordinate{Vec: slices.Clone(c.GetVec()), Error: c.GetError(), Adjustment: c.GetAdjustment(), Height: c.GetHeight()}
	if !pc.Valid() {
		return nil
	}
	return pc
}

func pointOf(d Device) *proximity.Point {
	if !d.Scopes.GetHasPoint() {
		return nil
	}
	p := proximity.Point{Lat: d.Scopes.GetLatitude(), Long: d.Scopes.GetLongitude()}
	if !p.Valid() {
		return nil
	}
	return &p
}
