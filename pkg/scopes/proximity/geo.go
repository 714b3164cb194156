package proximity

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Point is a place on the ground, in degrees (WGS 84).
type Point struct {
	Lat, Long float64
}

// earthRadiusKm is the Earth's mean radius (IUGG).
const earthRadiusKm = 6371.0088

// DistanceKm returns the great-circle distance between p and q, by the
// haversine formula on a spherical Earth (within 0.5% of the ellipsoid).
func (p Point) DistanceKm(q Point) float64 {
	rad := func(deg float64) float64 { return deg * math.Pi / 180 }
	lat1, lat2 := rad(p.Lat), rad(q.Lat)
	dLat, dLong := lat2-lat1, rad(q.Long-p.Long)
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1)*math.Cos(lat2)*math.Sin(dLong/2)*math.Sin(dLong/2)
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(min(h, 1)))
}

// Valid reports whether p's latitude is within ±90 and its longitude within ±180.
func (p Point) Valid() bool {
	return p.Lat >= -90 && p.Lat <= 90 && p.Long >= -180 && p.Long <= 180
}

// Location is where an operator says a device is: a point, a region label,
// or nothing. The zero value is no location.
type Location struct {
	// Point is the device's place; nil if not given.
	Point *Point
	// Region is a label such as "eu-west" or "factory-3"; "" if not given.
	Region string
}

// IsZero reports whether l says nothing.
func (l Location) IsZero() bool { return l.Point == nil && l.Region == "" }

// String returns l as ParseLocation reads it: "lat,long", a region label, or "".
func (l Location) String() string {
	if l.Point != nil {
		return strconv.FormatFloat(l.Point.Lat, 'f', -1, 64) + "," + strconv.FormatFloat(l.Point.Long, 'f', -1, 64)
	}
	return l.Region
}

var regionRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$`)

// ParseLocation reads a --location value: "lat,long" in decimal degrees
// (e.g. "52.52,13.405"), or a region label of lower-case letters, digits,
// '-', '.' and '_' (at most 63 characters, starting and ending with a letter
// or digit). The empty string is no location.
func ParseLocation(s string) (Location, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Location{}, nil
	}
	if lat, long, ok := strings.Cut(s, ","); ok {
		la, err1 := strconv.ParseFloat(strings.TrimSpace(lat), 64)
		lo, err2 := strconv.ParseFloat(strings.TrimSpace(long), 64)
		p := Point{Lat: la, Long: lo}
		if err1 != nil || err2 != nil || !p.Valid() {
			return Location{}, fmt.Errorf("location %q: want lat,long in degrees (lat within ±90, long within ±180) or a region label", s)
		}
		return Location{Point: &p}, nil
	}
	if !regionRE.MatchString(s) {
		return Location{}, fmt.Errorf("location %q: want lat,long or a region label of lower-case letters, digits, '-', '.', '_'", s)
	}
	return Location{Region: s}, nil
}
