package proximity

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Config tunes the Vivaldi algorithm. Zero fields take the defaults, which
// are serf's (github.com/hashicorp/serf/coordinate.DefaultConfig). References:
//
//	[1] Dabek et al., "Vivaldi: A decentralized network coordinate system", SIGCOMM 2004.
//	[2] Ledlie, Gardner, Seltzer, "Network Coordinates in the Wild", NSDI 2007.
//	[3] Lee et al., "On suitability of Euclidean embedding for host-based network
//	    coordinate systems", IEEE/ACM ToN 18(1), 2010.
type Config struct {
	// Dimensionality of the Euclidean part of a coordinate; zero means 8.
	// Coordinates of different dimensionality cannot be compared.
	Dimensionality int
	// ErrorMax is a new coordinate's error and the error's upper bound; zero
	// means 1.5.
	ErrorMax float64
	// CE bounds how much one observation moves the error estimate [1]; zero
	// means 0.25.
	CE float64
	// CC bounds how much one observation moves the coordinate [1]; zero means 0.25.
	CC float64
	// AdjustmentWindowSize is how many samples the adjustment term averages
	// over [3]; zero means 20.
	AdjustmentWindowSize int
	// HeightMin is the least height, in seconds [2]; zero means 10 µs.
	HeightMin float64
	// LatencyFilterSize is how many recent RTTs per peer a median is taken
	// over, to damp outliers [2]; zero means 3.
	LatencyFilterSize int
	// GravityRho scales the pull towards the origin that stops coordinates
	// from drifting [2]; zero means 150.
	GravityRho float64
	// Seed seeds the random direction chosen when two coordinates coincide;
	// zero means a random seed.
	Seed uint64
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.Dimensionality == 0 {
		c.Dimensionality = 8
	}
	if c.ErrorMax == 0 {
		c.ErrorMax = 1.5
	}
	if c.CE == 0 {
		c.CE = 0.25
	}
	if c.CC == 0 {
		c.CC = 0.25
	}
	if c.AdjustmentWindowSize == 0 {
		c.AdjustmentWindowSize = 20
	}
	if c.HeightMin == 0 {
		c.HeightMin = 10e-6
	}
	if c.LatencyFilterSize == 0 {
		c.LatencyFilterSize = 3
	}
	if c.GravityRho == 0 {
		c.GravityRho = 150
	}
	return c
}

// Validate reports whether c, with its defaults, is usable.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Dimensionality < 1 || c.ErrorMax <= 0 || c.CE <= 0 || c.CE > 1 || c.CC <= 0 || c.CC > 1 ||
		c.AdjustmentWindowSize < 1 || c.HeightMin <= 0 || c.LatencyFilterSize < 1 || c.GravityRho <= 0 {
		return fmt.Errorf("invalid Vivaldi config %+v", c)
	}
	return nil
}

// Coordinate is a device's position in the network coordinate space. All
// lengths are in seconds. Its fields are exported so it can be carried over
// the wire; Vec must not be shared between coordinates that change.
type Coordinate struct {
	// Vec is the Euclidean part.
	Vec []float64
	// Error is the confidence in the coordinate, dimensionless: lower is better.
	Error float64
	// Adjustment is an offset learnt from recent samples, added to distances [3].
	Adjustment float64
	// Height models the device's access link, added to distances [2].
	Height float64
}

// NewCoordinate returns a coordinate at the origin with the largest error.
func NewCoordinate(cfg Config) Coordinate {
	cfg = cfg.WithDefaults()
	return Coordinate{Vec: make([]float64, cfg.Dimensionality), Error: cfg.ErrorMax, Height: cfg.HeightMin}
}

// Clone returns a deep copy of c.
func (c Coordinate) Clone() Coordinate {
	c.Vec = append([]float64(nil), c.Vec...)
	return c
}

// Valid reports whether every component of c is a finite number.
func (c Coordinate) Valid() bool {
	for _, v := range c.Vec {
		if !finite(v) {
			return false
		}
	}
	return finite(c.Error) && finite(c.Adjustment) && finite(c.Height)
}

// Compatible reports whether c and other have the same dimensionality.
func (c Coordinate) Compatible(other Coordinate) bool { return len(c.Vec) == len(other.Vec) }

// DistanceTo estimates the round-trip time between the devices at c and
// other. It panics if they are not Compatible.
func (c Coordinate) DistanceTo(other Coordinate) time.Duration {
	return seconds(c.distanceTo(other))
}

func (c Coordinate) distanceTo(other Coordinate) float64 {
	d := c.rawDistanceTo(other)
	if adjusted := d + c.Adjustment + other.Adjustment; adjusted > 0 {
		d = adjusted
	}
	return d
}

// rawDistanceTo is the Vivaldi distance without the adjustment terms.
func (c Coordinate) rawDistanceTo(other Coordinate) float64 {
	if !c.Compatible(other) {
		panic(fmt.Sprintf("coordinates of dimensionality %d and %d", len(c.Vec), len(other.Vec)))
	}
	return magnitude(diff(c.Vec, other.Vec)) + c.Height + other.Height
}

// applyForce returns c moved by force (seconds) away from other (towards it
// when force is negative), its height adjusted in proportion.
func (c Coordinate) applyForce(cfg Config, r *rand.Rand, force float64, other Coordinate) Coordinate {
	out := c.Clone()
	unit, mag := unitVectorAt(r, c.Vec, other.Vec)
	for i := range out.Vec {
		out.Vec[i] += unit[i] * force
	}
	if mag > zeroThreshold {
		out.Height = max(out.Height+force*(out.Height+other.Height)/mag, cfg.HeightMin)
	}
	return out
}

const (
	// zeroThreshold decides when two coordinates are on top of each other, and
	// is the least RTT, in seconds.
	zeroThreshold = 1e-6
	// MaxRTT is the longest round-trip time Update accepts.
	MaxRTT = 10 * time.Second
)

// unitVectorAt returns the unit vector pointing from b to a and their distance;
// a random unit vector (and distance 0) when they coincide.
func unitVectorAt(r *rand.Rand, a, b []float64) ([]float64, float64) {
	v := diff(a, b)
	if mag := magnitude(v); mag > zeroThreshold {
		return scale(v, 1/mag), mag
	}
	for i := range v {
		v[i] = r.Float64() - 0.5
	}
	if mag := magnitude(v); mag > zeroThreshold {
		return scale(v, 1/mag), 0
	}
	v = make([]float64, len(v))
	v[0] = 1
	return v, 0
}

// Client keeps one device's coordinate and updates it from measured RTTs, as
// serf's coordinate.Client does. It is safe for concurrent use.
type Client struct {
	cfg Config

	mu         sync.Mutex
	coord      Coordinate
	origin     Coordinate
	rand       *rand.Rand
	adjIndex   int
	adjSamples []float64
	latency    map[string][]float64 // recent RTTs per peer, in seconds
	resets     int
}

// NewClient returns a client at the origin. It returns an error if cfg is invalid.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Client{
		cfg:        cfg,
		coord:      NewCoordinate(cfg),
		origin:     NewCoordinate(cfg),
		rand:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		adjSamples: make([]float64, cfg.AdjustmentWindowSize),
		latency:    map[string][]float64{},
	}, nil
}

// Coordinate returns a copy of the client's coordinate.
func (c *Client) Coordinate() Coordinate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.coord.Clone()
}

// SetCoordinate replaces the client's coordinate, e.g. with one kept from
// before a restart. It returns an error if coord is invalid or of another
// dimensionality.
func (c *Client) SetCoordinate(coord Coordinate) error {
	if err := c.check(coord); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.coord = coord.Clone()
	return nil
}

// DistanceTo estimates the RTT from the client's device to the device at other.
// It panics if other is of another dimensionality.
func (c *Client) DistanceTo(other Coordinate) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.coord.DistanceTo(other)
}

// Forget drops what the client remembers of a peer's recent RTTs; call it
// when the peer leaves.
func (c *Client) Forget(peer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.latency, peer)
}

// Resets counts how often the coordinate became invalid and was reset.
func (c *Client) Resets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}

// Update folds one observation into the client's coordinate: rtt was measured
// to peer, whose coordinate is other. It returns the new coordinate, or an
// error (and changes nothing) if other is invalid or of another
// dimensionality or rtt is negative or longer than MaxRTT.
func (c *Client) Update(peer string, other Coordinate, rtt time.Duration) (Coordinate, error) {
	if err := c.check(other); err != nil {
		return Coordinate{}, err
	}
	if rtt < 0 || rtt > MaxRTT {
		return Coordinate{}, fmt.Errorf("round-trip time %v out of range [0, %v]", rtt, MaxRTT)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.filter(peer, rtt.Seconds())
	c.updateVivaldi(other, s)
	c.updateAdjustment(other, s)
	c.updateGravity()
	if !c.coord.Valid() {
		c.resets++
		c.coord = NewCoordinate(c.cfg)
	}
	return c.coord.Clone(), nil
}

func (c *Client) check(other Coordinate) error {
	if len(other.Vec) != c.cfg.Dimensionality {
		return fmt.Errorf("coordinate of dimensionality %d, want %d", len(other.Vec), c.cfg.Dimensionality)
	}
	if !other.Valid() {
		return errors.New("coordinate has non-finite components")
	}
	return nil
}

// filter records a sample for peer and returns the median of its recent samples.
func (c *Client) filter(peer string, rtt float64) float64 {
	samples := append(c.latency[peer], rtt)
	if len(samples) > c.cfg.LatencyFilterSize {
		samples = samples[len(samples)-c.cfg.LatencyFilterSize:]
	}
	c.latency[peer] = samples
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

func (c *Client) updateVivaldi(other Coordinate, rtt float64) {
	rtt = max(rtt, zeroThreshold)
	dist := c.coord.distanceTo(other)
	wrongness := math.Abs(dist-rtt) / rtt
	total := max(c.coord.Error+other.Error, zeroThreshold)
	weight := c.coord.Error / total
	c.coord.Error = min(c.cfg.CE*weight*wrongness+c.coord.Error*(1-c.cfg.CE*weight), c.cfg.ErrorMax)
	force := c.cfg.CC * weight * (rtt - dist)
	c.coord = c.coord.applyForce(c.cfg, c.rand, force, other)
}

func (c *Client) updateAdjustment(other Coordinate, rtt float64) {
	c.adjSamples[c.adjIndex] = rtt - c.coord.rawDistanceTo(other)
	c.adjIndex = (c.adjIndex + 1) % len(c.adjSamples)
	sum := 0.0
	for _, s := range c.adjSamples {
		sum += s
	}
	c.coord.Adjustment = sum / (2 * float64(len(c.adjSamples)))
}

func (c *Client) updateGravity() {
	dist := c.origin.distanceTo(c.coord)
	r := dist / c.cfg.GravityRho
	force := -r * r
	c.coord = c.coord.applyForce(c.cfg, c.rand, force, c.origin)
}

func finite(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func diff(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range out {
		out[i] = a[i] - b[i]
	}
	return out
}

func scale(v []float64, f float64) []float64 {
	for i := range v {
		v[i] *= f
	}
	return v
}

func magnitude(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x * x
	}
	return math.Sqrt(sum)
}
