package client

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/clock"
)

// Contact is when the device last heard from the hub, and the requests to
// resync: to end the control session, so that the hub sends its full
// desired state on the next. The agent makes one and hands it to the client,
// which touches it on every message from the hub and serves the requests,
// and to whatever decides by the contact (the supervisor's fencing). Its
// methods are safe for concurrent use and do not block.
type Contact struct {
	clock  clock.Clock
	resync chan struct{} // capacity 1: a request not served yet

	mu   sync.Mutex
	last time.Time
}

// NewContact returns a contact with no contact yet, whose times are read
// from c (nil: the system clock).
func NewContact(c clock.Clock) *Contact {
	return &Contact{clock: clock.Or(c), resync: make(chan struct{}, 1)}
}

// Last is when the device last heard from the hub (see Client.LastContact):
// zero if it has not since the contact was made.
func (c *Contact) Last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// touch records that the hub was heard from now.
func (c *Contact) touch() {
	now := c.clock.Now()
	c.mu.Lock()
	c.last = now
	c.mu.Unlock()
}

// Resync asks the client to end its current control session, if any (see
// Client.Resync).
func (c *Contact) Resync() {
	select {
	case c.resync <- struct{}{}:
	default:
	}
}

// Credentials are what the device mesh needs to prove this device to its
// peers and check theirs: the device certificate as it is now, the fabric's
// CA and the device's account. The client sets them as the device joins and
// renews its certificate; the agent makes them and hands them to the client,
// the mesh and the scope watcher. Its methods are safe for concurrent use
// and do not block.
type Credentials struct {
	joined chan struct{}
	once   sync.Once

	mu      sync.Mutex
	cert    *tls.Certificate
	ca      *x509.CertPool
	account string
}

// NewCredentials returns credentials of a device that has not joined.
func NewCredentials() *Credentials {
	return &Credentials{joined: make(chan struct{})}
}

// Joined is closed once the device holds a certificate (from its store or
// the first bootstrap).
func (c *Credentials) Joined() <-chan struct{} { return c.joined }

// Get returns the device certificate, the fabric's CA and the device's
// account; ok is false before the device joined.
func (c *Credentials) Get() (cert *tls.Certificate, ca *x509.CertPool, account string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil || c.ca == nil {
		return nil, nil, "", false
	}
	return c.cert, c.ca, c.account, true
}

// set records the device's certificate, the CA (DER) and the account; a CA
// that does not parse leaves Get without credentials, as none does.
func (c *Credentials) set(cert *tls.Certificate, caDER []byte, account string) {
	var pool *x509.CertPool
	if caDER != nil {
		if caCert, err := x509.ParseCertificate(caDER); err == nil {
			pool = x509.NewCertPool()
			pool.AddCert(caCert)
		}
	}
	c.mu.Lock()
	c.cert, c.ca, c.account = cert, pool, account
	c.mu.Unlock()
	if cert != nil {
		c.once.Do(func() { close(c.joined) })
	}
}
