package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
)

// loadIdentity reads the device key and certificate from the store, creating
// the key on first start.
func (c *Client) loadIdentity() error {
	id, err := c.store.Identity()
	if err != nil {
		return fmt.Errorf("read identity: %w", err)
	}
	if id.DeviceID != "" && id.DeviceID != c.cfg.DeviceID {
		return fmt.Errorf("%w: the data directory belongs to device %q, not %q", ErrRefused, id.DeviceID, c.cfg.DeviceID)
	}
	if id.KeyDER == nil {
		key, err := identity.NewKey()
		if err != nil {
			return err
		}
		if id.KeyDER, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
			return err
		}
		id.DeviceID = c.cfg.DeviceID
		if err := c.store.SetIdentity(id); err != nil {
			return fmt.Errorf("save identity: %w", err)
		}
	}
	k, err := x509.ParsePKCS8PrivateKey(id.KeyDER)
	if err != nil {
		return fmt.Errorf("device key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("device key is not ECDSA")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id, c.key = id, key
	if id.CertDER != nil {
		c.cert = &tls.Certificate{Certificate: [][]byte{id.CertDER}, PrivateKey: key}
		c.joinedOnce.Do(func() { close(c.joined) })
	}
	return nil
}

// Joined is closed once the device holds a certificate (from its store or
// the first bootstrap).
func (c *Client) Joined() <-chan struct{} { return c.joined }

// MeshIdentity returns what the device mesh needs to prove this device to its
// peers and check theirs: the device certificate as it is now (renewals
// replace it), the fabric's CA and the device's account. ok is false before
// the device joined.
func (c *Client) MeshIdentity() (cert *tls.Certificate, ca *x509.CertPool, account string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil || c.id.CADER == nil {
		return nil, nil, "", false
	}
	caCert, err := x509.ParseCertificate(c.id.CADER)
	if err != nil {
		return nil, nil, "", false
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return c.cert, pool, c.id.Account, true
}

// certLeft is how much of the certificate's life is left, as a fraction.
func (c *Client) certLeft(now time.Time) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil {
		return 0
	}
	leaf, err := x509.ParseCertificate(c.cert.Certificate[0])
	if err != nil {
		return 0
	}
	total := leaf.NotAfter.Sub(leaf.NotBefore)
	return float64(leaf.NotAfter.Sub(now)) / float64(total)
}

// ensureCertificate makes sure the device holds a certificate with more than
// a third of its life left: renewing it with the current one, or joining again
// with the bootstrap token when there is none or it expired.
func (c *Client) ensureCertificate(ctx context.Context) error {
	c.mu.Lock()
	decommissioned, oldToken := c.id.Decommissioned != "", c.id.DecommissionedToken
	c.mu.Unlock()
	if decommissioned {
		// Only another token joins again: the one the agent had when it
		// was removed from the fleet may still be valid.
		if c.cfg.Token != "" && !bytes.Equal(tokenSum(c.cfg.Token), oldToken) {
			return c.bootstrap(ctx)
		}
		return nil // the hub refuses the certificate again, and says why
	}
	left := c.certLeft(time.Now())
	if left > 1.0/3 {
		return nil
	}
	if left > 0 {
		err := c.renew(ctx)
		if err == nil {
			return nil
		}
		if isDecommissioned(err) {
			return refusal(err)
		}
		c.log.Warn("certificate renewal failed", "err", err)
		if c.cfg.Token == "" {
			return err
		}
	}
	if c.cfg.Token == "" {
		return fmt.Errorf("%w: the device has no valid certificate and no bootstrap token was given (--token)", ErrRefused)
	}
	return c.bootstrap(ctx)
}

func (c *Client) csr() ([]byte, error) {
	c.mu.Lock()
	key := c.key
	c.mu.Unlock()
	return identity.NewCSR(key, c.cfg.DeviceID)
}

func (c *Client) bootstrap(ctx context.Context) error {
	csr, err := c.csr()
	if err != nil {
		return err
	}
	conn, err := c.dial(false)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := hubv1.NewHubClient(conn).Bootstrap(ctx, &hubv1.BootstrapRequest{Token: c.cfg.Token, CsrDer: csr, DeviceId: c.cfg.DeviceID})
	if err != nil {
		return fmt.Errorf("bootstrap with token %q at hub %s: %w", identity.TokenHint(c.cfg.Token), c.cfg.Hub, refusal(err))
	}
	c.log.Info("joined the fabric", "device", resp.GetDeviceId(), "account", resp.GetAccount(), "certificateExpires", resp.GetNotAfter().AsTime())
	return c.saveCert(resp)
}

func (c *Client) renew(ctx context.Context) error {
	csr, err := c.csr()
	if err != nil {
		return err
	}
	conn, err := c.dial(true)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := hubv1.NewHubClient(conn).Renew(ctx, &hubv1.RenewRequest{CsrDer: csr})
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	c.log.Info("certificate renewed", "expires", resp.GetNotAfter().AsTime())
	return c.saveCert(resp)
}

func (c *Client) saveCert(resp *hubv1.BootstrapResponse) error {
	c.mu.Lock()
	c.id.CertDER, c.id.CADER, c.id.Account = resp.GetCertificateDer(), resp.GetCaDer(), resp.GetAccount()
	c.id.Decommissioned, c.id.DecommissionedToken = "", nil
	c.refused = false
	id, key := c.id, c.key
	c.cert = &tls.Certificate{Certificate: [][]byte{id.CertDER}, PrivateKey: key}
	c.mu.Unlock()
	err := c.store.SetIdentity(id)
	c.joinedOnce.Do(func() { close(c.joined) })
	return err
}

// RenewLoop renews the certificate in the background when two thirds of its
// life have passed, even while the control stream stays up. It returns when
// ctx ends.
func (c *Client) RenewLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if left := c.certLeft(time.Now()); left > 0 && left <= 1.0/3 {
				if err := c.renew(ctx); err != nil {
					c.log.Warn("certificate renewal failed", "err", err)
				}
			}
		}
	}
}
