package mesh_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgefabric/edgefabric/pkg/agent/mesh"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/scopes/proximity"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// device signs a certificate for d with ca.
func device(t *testing.T, ca *identity.CA, d identity.Device) mesh.Identity {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.NewCSR(key, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignDevice(csr, d, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return mesh.Identity{
		Certificate: &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key},
		Account:     d.Account,
		DeviceID:    d.ID,
	}
}

// start runs a mesh for id on loopback until the test ends.
func start(t *testing.T, id mesh.Identity, ca *x509.CertPool, coord *proximity.Coordinate) *mesh.Mesh {
	t.Helper()
	id.CA = ca
	m, err := mesh.New(mesh.Config{
		Listen:     "127.0.0.1:0",
		Identity:   func() (mesh.Identity, bool) { return id, true },
		Coordinate: func() *proximity.Coordinate { return coord },
		Timeout:    5 * time.Second,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(t.Context()); err != nil {
			t.Errorf("mesh run: %v", err)
		}
	}()
	t.Cleanup(func() { <-done })
	return m
}

func TestProbe(t *testing.T) {
	ca, err := identity.NewCA("fabric", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := identity.NewCA("another fabric", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	coord := proximity.NewCoordinate(proximity.Config{})
	coord.Vec[0] = 0.004
	a1 := start(t, device(t, ca, identity.Device{ID: "a1", Account: "a"}), ca.Pool(), &coord)
	a2 := start(t, device(t, ca, identity.Device{ID: "a2", Account: "a"}), ca.Pool(), nil)
	b1 := start(t, device(t, ca, identity.Device{ID: "b1", Account: "b"}), ca.Pool(), nil)
	// Same account name, certificate from another CA.
	x1 := start(t, device(t, other, identity.Device{ID: "x1", Account: "a"}), other.Pool(), nil)
	addr := func(m *mesh.Mesh) string { return mesh.JoinHostPort("127.0.0.1", m.Port()) }

	tests := []struct {
		name      string
		target    *mesh.Mesh
		want      string
		wantErr   bool
		wantCoord bool
	}{
		{name: "same CA and account", target: a1, want: "a1", wantCoord: true},
		{name: "any device of the account", target: a1, want: "", wantCoord: true},
		{name: "announced as another device", target: a1, want: "a9", wantErr: true},
		{name: "another account", target: b1, want: "b1", wantErr: true},
		{name: "another CA", target: x1, want: "x1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 2 { // the second probe reuses the connection
				res, err := a2.Probe(t.Context(), addr(tt.target), tt.want)
				if tt.wantErr {
					if !errors.Is(err, mesh.ErrNotProven) {
						t.Fatalf("probe %d: got error %v, want one wrapping ErrNotProven", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("probe %d: %v", i, err)
				}
				if res.Device != (identity.Device{ID: "a1", Account: "a"}) {
					t.Errorf("probe %d: got device %+v, want a1 of a", i, res.Device)
				}
				if res.RTT <= 0 || res.RTT > 5*time.Second {
					t.Errorf("probe %d: got RTT %v", i, res.RTT)
				}
				if (res.Coordinate != nil) != tt.wantCoord || (res.Coordinate != nil && res.Coordinate.Vec[0] != 0.004) {
					t.Errorf("probe %d: got coordinate %+v", i, res.Coordinate)
				}
			}
		})
	}
	// The refused peers also refuse a2 when they dial it.
	if _, err := b1.Probe(t.Context(), addr(a2), ""); err == nil {
		t.Error("a device of account b was accepted by a device of account a")
	}
}
