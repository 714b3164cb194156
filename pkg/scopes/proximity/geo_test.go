package proximity

import (
	"math"
	"testing"
)

func TestDistanceKm(t *testing.T) {
	berlin, paris := Point{52.5200, 13.4050}, Point{48.8566, 2.3522}
	london, newYork := Point{51.5074, -0.1278}, Point{40.7128, -74.0060}
	tests := []struct {
		name string
		p, q Point
		want float64 // km
		tol  float64
	}{
		{"same point", berlin, berlin, 0, 1e-9},
		{"Berlin–Paris", berlin, paris, 878, 5},
		{"London–New York", london, newYork, 5570, 15},
		{"across the antimeridian", Point{0, 179.5}, Point{0, -179.5}, 111.2, 0.5},
		{"antipodes", Point{0, 0}, Point{0, 180}, math.Pi * earthRadiusKm, 1e-6},
	}
	for _, tt := range tests {
		if got := tt.p.DistanceKm(tt.q); math.Abs(got-tt.want) > tt.tol {
			t.Errorf("%s: %.1f km, want %.1f ± %.1f", tt.name, got, tt.want, tt.tol)
		}
		if a, b := tt.p.DistanceKm(tt.q), tt.q.DistanceKm(tt.p); math.Abs(a-b) > 1e-9 {
			t.Errorf("%s: not symmetric: %v vs %v", tt.name, a, b)
		}
	}
}

func TestParseLocation(t *testing.T) {
	tests := []struct {
		in      string
		want    string // Location.String()
		point   bool
		wantErr bool
	}{
		{in: "52.52,13.405", want: "52.52,13.405", point: true},
		{in: " -33.87 , 151.21 ", want: "-33.87,151.21", point: true},
		{in: "eu-west", want: "eu-west"},
		{in: "factory_3.hall-b", want: "factory_3.hall-b"},
		{in: "", want: ""},
		{in: "91,0", wantErr: true},
		{in: "0,181", wantErr: true},
		{in: "north,east", wantErr: true},
		{in: "EU West", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseLocation(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseLocation(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got.String() != tt.want || (got.Point != nil) != tt.point {
			t.Errorf("ParseLocation(%q) = %q (point %v), want %q (point %v)", tt.in, got, got.Point != nil, tt.want, tt.point)
		}
		if again, err := ParseLocation(got.String()); err != nil || again.String() != got.String() {
			t.Errorf("ParseLocation(%q) does not round-trip: %q, %v", got, again, err)
		}
	}
}
