package identity

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestSignDeviceNamesDeviceNotCSRSubject(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("test", now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, "someone-else")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignDevice(csr, Device{ID: "pi-1", Account: "acme"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	got, err := FromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Device{ID: "pi-1", Account: "acme"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := cert.URIs[0].String(); got != "edgefabric://acme/pi-1" {
		t.Errorf("uri: got %s", got)
	}
}

func TestCARoundTripsThroughPEM(t *testing.T) {
	ca, err := NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := ca.PEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadCA(c, k)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(ca.Cert) {
		t.Error("certificate changed")
	}
	if _, err := LoadCA(c, []byte("junk")); err == nil {
		t.Error("junk key accepted")
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"demo", true}, {"pi-1", true}, {"a.b", true}, {"", false}, {"Demo", false}, {"-x", false}, {"x_y", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidName(tc.name) == nil; got != tc.ok {
				t.Errorf("ValidName(%q) ok=%v, want %v", tc.name, got, tc.ok)
			}
		})
	}
}

func TestTokenHint(t *testing.T) {
	for _, tc := range []struct{ token, want string }{
		{"", "(none)"},
		{"abc", "…"},
		{"abcdef", "…"},
		{"abcdef0123456789", "abcdef…"},
	} {
		if got := TokenHint(tc.token); got != tc.want {
			t.Errorf("TokenHint(%q): got %q, want %q", tc.token, got, tc.want)
		}
	}
}
