package identity

import (
	"crypto/x509"
	"testing"
	"time"
)

// FuzzSignDevice signs arbitrary bytes as a device's certificate request,
// as the hub does with what a bootstrapping device sends: it never panics,
// and a certificate it signs names the device and account it was asked to,
// whatever the request claimed, and parses back to them.
func FuzzSignDevice(f *testing.F) {
	key, err := NewKey()
	if err != nil {
		f.Fatal(err)
	}
	csr, err := NewCSR(key, "pi-1")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(csr, "pi-1")
	f.Add(csr, "another-device")
	f.Add(csr[:len(csr)/2], "pi-1")
	f.Add([]byte{0x30, 0x82, 0xff, 0xff}, "pi-1")
	f.Add([]byte{}, "")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ca, err := NewCA("fuzz", now)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, der []byte, id string) {
		d := Device{ID: id, Account: "acme"}
		cert, err := ca.SignDevice(der, d, now, time.Hour)
		if err != nil {
			return
		}
		got, err := FromCertificate(cert)
		if err != nil {
			t.Fatalf("signed a certificate FromCertificate refuses: %v", err)
		}
		if got != d {
			t.Fatalf("signed a certificate for %+v, asked for %+v", got, d)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("signed certificate does not verify: %v", err)
		}
	})
}

// FuzzParseCert parses arbitrary bytes as a PEM certificate and reads a
// device from what parses: neither may panic.
func FuzzParseCert(f *testing.F) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ca, err := NewCA("fuzz", now)
	if err != nil {
		f.Fatal(err)
	}
	key, err := NewKey()
	if err != nil {
		f.Fatal(err)
	}
	csr, err := NewCSR(key, "pi-1")
	if err != nil {
		f.Fatal(err)
	}
	cert, err := ca.SignDevice(csr, Device{ID: "pi-1", Account: "acme"}, now, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(CertPEM(cert.Raw))
	f.Add(CertPEM(ca.Cert.Raw))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCertPEM(data)
		if err != nil {
			return
		}
		_, _ = FromCertificate(c)
		_ = IssuedAt(c)
	})
}
