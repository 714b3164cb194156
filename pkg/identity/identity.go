// Package identity holds the certificate vocabulary shared by the provider and
// the agent: the fabric's certificate authority, device key pairs and CSRs, and
// how a certificate names a device and its account.
//
// A device certificate carries the device ID as its common name, the account as
// its only organization, and the URI SAN edgefabric://<account>/<device>. The
// provider signs it after checking a bootstrap token; every later RPC is
// authorised by it. Only the standard library is used, so the agent can link it.
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"regexp"
	"time"
)

// Device names one device of one account.
type Device struct {
	ID      string
	Account string
}

// URI is the SAN that names d in its certificate.
func (d Device) URI() *url.URL {
	return &url.URL{Scheme: "edgefabric", Host: d.Account, Path: "/" + d.ID}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// ValidName reports whether s may be used as a device ID or account name: a
// DNS-1123 subdomain-like label of at most 63 characters, so both fit in node
// names and labels.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q must be 1-63 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit", s)
	}
	return nil
}

// FromCertificate returns the device a verified client certificate names.
func FromCertificate(cert *x509.Certificate) (Device, error) {
	if len(cert.Subject.Organization) != 1 {
		return Device{}, errors.New("certificate names no single account")
	}
	d := Device{ID: cert.Subject.CommonName, Account: cert.Subject.Organization[0]}
	if err := ValidName(d.ID); err != nil {
		return Device{}, fmt.Errorf("device id: %w", err)
	}
	if err := ValidName(d.Account); err != nil {
		return Device{}, fmt.Errorf("account: %w", err)
	}
	return d, nil
}

// TokenHint names a bootstrap token in messages and logs without revealing it:
// its first six characters followed by "…", or "(none)" for the empty token.
func TokenHint(token string) string {
	const shown = 6
	switch {
	case token == "":
		return "(none)"
	case len(token) <= shown:
		return "…"
	}
	return token[:shown] + "…"
}

// NewKey creates a device or CA private key (ECDSA P-256).
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// NewCSR makes a certificate request for device id signed by key.
func NewCSR(key crypto.Signer, id string) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: id},
	}, key)
}

// CA is the fabric's certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA creates a self-signed CA valid for ten years.
func NewCA(name string, now time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"edgefabric"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign ca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA parses a CA from PEM-encoded certificate and PKCS#8 key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("ca key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("ca key: not a signing key")
	}
	return &CA{Cert: cert, Key: signer}, nil
}

// PEM returns the CA's certificate and key in PEM.
func (ca *CA) PEM() (certPEM, keyPEM []byte, err error) {
	kder, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, nil, err
	}
	return CertPEM(ca.Cert.Raw), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// Pool returns a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// SignDevice signs csrDER as a client certificate for d, valid for ttl.
// The request's own subject is ignored: the certificate names d, whose ID
// and account must be valid names (ValidName).
func (ca *CA) SignDevice(csrDER []byte, d Device, now time.Time, ttl time.Duration) (*x509.Certificate, error) {
	// A certificate FromCertificate would refuse is no use to anyone: its
	// holder would be refused everywhere with a puzzling error.
	if err := ValidName(d.ID); err != nil {
		return nil, fmt.Errorf("device id: %w", err)
	}
	if err := ValidName(d.Account); err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("parse csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr signature: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: d.ID, Organization: []string{d.Account}},
		URIs:         []*url.URL{d.URI()},
		NotBefore:    now.Add(-Backdate),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	return ca.sign(tmpl, csr.PublicKey)
}

// Backdate is how long before its signing a device certificate is valid
// from, for clocks a little behind.
const Backdate = 5 * time.Minute

// IssuedAt is when a device certificate from SignDevice was signed, to the
// second.
func IssuedAt(c *x509.Certificate) time.Time { return c.NotBefore.Add(Backdate) }

// SignServer issues a serving certificate for the given DNS names and IPs.
func (ca *CA) SignServer(key crypto.Signer, name string, hosts []string, now time.Time, ttl time.Duration) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.sign(tmpl, key.Public())
}

func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// CertPEM encodes a DER certificate.
func CertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseCertPEM decodes the first certificate in PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}
