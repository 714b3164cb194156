package proximity

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"
)

// Device is what Group knows of one device.
type Device struct {
	ID string
	// Coordinate is the device's network coordinate; nil if it has none yet.
	Coordinate *Coordinate
	// Location is where the operator says the device is.
	Location Location
}

// GroupConfig says how close devices must be to share a proximity cluster.
// At least one of RTT and Km must be set.
type GroupConfig struct {
	// RTT is the radius in estimated round-trip time between network
	// coordinates; zero means coordinates are not used.
	RTT time.Duration
	// Km is the radius on the ground, used for two devices that both have a
	// point; zero means points are not used.
	Km float64
	// Stickiness lets a device stay in its previous cluster while it is within
	// the radius times Stickiness of the cluster's seed, so that noise in the
	// estimates does not make it flap between clusters; zero means 1.25.
	Stickiness float64
}

// DefaultStickiness is GroupConfig.Stickiness's default.
const DefaultStickiness = 1.25

// Validate reports whether c is usable.
func (c GroupConfig) Validate() error {
	var errs []error
	if c.RTT < 0 || c.Km < 0 || math.IsNaN(c.Km) {
		errs = append(errs, errors.New("radius must not be negative"))
	}
	if c.RTT == 0 && c.Km == 0 {
		errs = append(errs, errors.New("set a radius in RTT or in km"))
	}
	if c.Stickiness != 0 && !(c.Stickiness >= 1) {
		errs = append(errs, errors.New("stickiness must be at least 1"))
	}
	return errors.Join(errs...)
}

// Cluster is one proximity cluster.
type Cluster struct {
	// ID names the cluster; it is derived from the ID of the device that first
	// seeded it and kept for the cluster's lifetime.
	ID string
	// Seed is the device the others are within the radius of.
	Seed string
	// Members are the devices in the cluster, the seed included, sorted.
	Members []string
}

// IDLength is the length of cluster IDs: lower-case hex digits.
const IDLength = 8

// Group forms the proximity clusters of one account's devices: a pure,
// deterministic function of its inputs, not of their order.
//
// Clusters form around seeds. Each device is within the radius of its
// cluster's seed: by great-circle distance when GroupConfig.Km is set and both
// have a point, else by estimated RTT when GroupConfig.RTT is set and both
// have a coordinate, else by equal region labels. A device with none of these
// is returned in unplaced.
//
// prev is Group's previous result (nil the first time); it keeps clusters
// stable. Each previous cluster lives on with its ID while its seed is
// present, or, when the seed has gone, with the lowest-ID remaining member as
// its new seed (its ID is kept too, so the virtual node keeps its name). Then
// each other device, in ID order, stays in its previous cluster if it is still
// within the radius times Stickiness of that cluster's seed, else joins the
// cluster whose seed is nearest within the radius (ties by cluster ID), else
// seeds a new cluster whose ID hashes its own ID. So a device joining or
// leaving moves no other device, except the members of a cluster whose seed
// left that are not within the radius of the new seed. Without prev, seeds
// are chosen in ID order.
//
// clusters are sorted by ID; unplaced is sorted. Group returns an error only
// for an invalid config.
func Group(devices []Device, cfg GroupConfig, prev []Cluster) (clusters []Cluster, unplaced []string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if cfg.Stickiness == 0 {
		cfg.Stickiness = DefaultStickiness
	}

	byID := map[string]Device{}
	for _, d := range devices {
		if d.ID != "" {
			byID[d.ID] = d // of several entries for one device, the last counts
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	placeable := func(id string) bool {
		d, ok := byID[id]
		return ok && cfg.usable(d)
	}

	type cluster struct {
		Cluster
		seed Device
	}
	var live []*cluster
	clusterOf := map[string]*cluster{} // by device: the cluster it seeds or joined
	taken := map[string]bool{}         // cluster IDs in use

	// Previous clusters live on while their seed, or a successor, is here.
	prevSorted := slices.Clone(prev)
	slices.SortFunc(prevSorted, func(a, b Cluster) int { return cmp.Compare(a.ID, b.ID) })
	prevOf := map[string]string{}
	for _, c := range prevSorted {
		for _, m := range c.Members {
			if _, ok := prevOf[m]; !ok {
				prevOf[m] = c.ID
			}
		}
	}
	for _, p := range prevSorted {
		if p.ID == "" || taken[p.ID] {
			continue
		}
		seed := ""
		if placeable(p.Seed) && clusterOf[p.Seed] == nil {
			seed = p.Seed
		} else {
			members := slices.Sorted(slices.Values(p.Members))
			for _, m := range members {
				if placeable(m) && clusterOf[m] == nil && prevOf[m] == p.ID {
					seed = m
					break
				}
			}
		}
		if seed == "" {
			continue
		}
		c := &cluster{Cluster: Cluster{ID: p.ID, Seed: seed, Members: []string{seed}}, seed: byID[seed]}
		live = append(live, c)
		clusterOf[seed] = c
		taken[p.ID] = true
	}
	byClusterID := map[string]*cluster{}
	for _, c := range live {
		byClusterID[c.ID] = c
	}

	for _, id := range ids {
		if clusterOf[id] != nil {
			continue // a seed
		}
		d := byID[id]
		if !cfg.usable(d) {
			unplaced = append(unplaced, id)
			continue
		}
		var join *cluster
		if c := byClusterID[prevOf[id]]; c != nil {
			if score, ok := cfg.distance(d, c.seed); ok && score <= cfg.Stickiness {
				join = c
			}
		}
		if join == nil {
			best := math.Inf(1)
			for _, c := range live { // in order of creation; ties go to the earlier
				if score, ok := cfg.distance(d, c.seed); ok && score <= 1 && (score < best || score == best && c.ID < join.ID) {
					join, best = c, score
				}
			}
		}
		if join == nil {
			cid := clusterID(id)
			for n := 1; taken[cid]; n++ {
				cid = clusterID(id + "#" + strconv.Itoa(n))
			}
			join = &cluster{Cluster: Cluster{ID: cid, Seed: id}, seed: d}
			live = append(live, join)
			byClusterID[cid] = join
			taken[cid] = true
		}
		join.Members = append(join.Members, id)
		clusterOf[id] = join
	}

	clusters = make([]Cluster, 0, len(live))
	for _, c := range live {
		slices.Sort(c.Members)
		clusters = append(clusters, c.Cluster)
	}
	slices.SortFunc(clusters, func(a, b Cluster) int { return cmp.Compare(a.ID, b.ID) })
	return clusters, unplaced, nil
}

// clusterID derives a cluster ID from its first seed's ID.
func clusterID(seed string) string {
	sum := sha256.Sum256([]byte("edgefabric-prox:" + seed))
	return hex.EncodeToString(sum[:])[:IDLength]
}

// usable reports whether Group can place d by any measure c allows.
func (c GroupConfig) usable(d Device) bool {
	return c.Km > 0 && d.Location.Point != nil ||
		c.RTT > 0 && d.Coordinate != nil ||
		d.Location.Region != ""
}

// distance returns how far apart a and b are as a fraction of the radius
// (1 is on the radius), by the first measure both support, and whether any did.
func (c GroupConfig) distance(a, b Device) (float64, bool) {
	switch {
	case c.Km > 0 && a.Location.Point != nil && b.Location.Point != nil:
		return a.Location.Point.DistanceKm(*b.Location.Point) / c.Km, true
	case c.RTT > 0 && a.Coordinate != nil && b.Coordinate != nil && a.Coordinate.Compatible(*b.Coordinate):
		return float64(a.Coordinate.DistanceTo(*b.Coordinate)) / float64(c.RTT), true
	case a.Location.Region != "" && b.Location.Region != "":
		if a.Location.Region == b.Location.Region {
			return 1, true
		}
		return math.Inf(1), true
	}
	return 0, false
}
