package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	c.id, c.key = id, key
	if id.CertDER != nil {
		c.cert = &tls.Certificate{Certificate: [][]byte{id.CertDER}, PrivateKey: key}
	}
	cert := c.cert
	c.mu.Unlock()
	c.creds.set(cert, id.CADER, id.Account)
	return nil
}

// Joined is closed once the device holds a certificate (from its store or
// the first bootstrap).
func (c *Client) Joined() <-chan struct{} { return c.creds.Joined() }

// MeshIdentity returns what the device mesh needs to prove this device to its
// peers and check theirs: the device certificate as it is now (renewals
// replace it), the fabric's CA and the device's account. ok is false before
// the device joined.
func (c *Client) MeshIdentity() (cert *tls.Certificate, ca *x509.CertPool, account string, ok bool) {
	return c.creds.Get()
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
// a third of its life left: renewing it with its own key, also after it
// expired while the device was offline (the hub accepts that within its
// renewal grace), or joining with the bootstrap token when it has none or
// the hub refuses the renewal as too late.
func (c *Client) ensureCertificate(ctx context.Context) error {
	c.mu.Lock()
	decommissioned, oldToken, held := c.id.Decommissioned != "", c.id.DecommissionedToken, c.cert != nil
	c.mu.Unlock()
	if decommissioned {
		// Only another token joins again: the one the agent had when it
		// was removed from the fleet may still be valid (the hub refuses
		// the one that enrolled it, too).
		tok, err := c.token()
		if err != nil {
			return err
		}
		if tok != "" && !bytes.Equal(tokenSum(tok), oldToken) {
			return c.bootstrap(ctx, tok)
		}
		return nil // the hub refuses the certificate again, and says why
	}
	left := c.certLeft(c.cfg.Now())
	if left > 1.0/3 {
		return nil
	}
	if held {
		err := c.renew(ctx)
		switch {
		case err == nil:
			return nil
		case isDecommissioned(err):
			return refusal(err)
		case left > 0:
			// Still good: connect with it, RenewLoop tries again.
			c.log.Warn("certificate renewal failed", "err", err)
			return nil
		case status.Code(err) != codes.Unauthenticated:
			return err // the hub is unreachable or busy: try again later
		}
		c.log.Warn("expired certificate not renewed; joining again with the bootstrap token", "err", err)
	}
	tok, err := c.token()
	if err != nil {
		return err
	}
	if tok == "" {
		why := "the device has no certificate yet"
		if held {
			why = "the device's certificate expired longer ago than the hub's renewal grace"
		}
		return fmt.Errorf("%w: %s and no bootstrap token was given (--token-file)", ErrRefused, why)
	}
	return c.bootstrap(ctx, tok)
}

// token is the bootstrap token: Token, or the content of TokenFile ("" when
// the file does not exist).
func (c *Client) token() (string, error) {
	if c.cfg.Token != "" || c.cfg.TokenFile == "" {
		return c.cfg.Token, nil
	}
	b, err := os.ReadFile(c.cfg.TokenFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: read the bootstrap token: %w", ErrRefused, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (c *Client) csr() ([]byte, error) {
	c.mu.Lock()
	key := c.key
	c.mu.Unlock()
	return identity.NewCSR(key, c.cfg.DeviceID)
}

func (c *Client) bootstrap(ctx context.Context, token string) error {
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
	resp, err := hubv1.NewHubClient(conn).Bootstrap(ctx, &hubv1.BootstrapRequest{Token: token, CsrDer: csr, DeviceId: c.cfg.DeviceID})
	if err != nil {
		return fmt.Errorf("bootstrap with token %q at hub %s: %w", identity.TokenHint(token), c.cfg.Hub, refusal(err))
	}
	c.log.Info("joined the fabric", "device", resp.GetDeviceId(), "account", resp.GetAccount(), "certificateExpires", resp.GetNotAfter().AsTime())
	if err := c.saveCert(resp); err != nil {
		return err
	}
	// The device now proves itself by its key: the token is not kept.
	if c.cfg.Token == "" && c.cfg.TokenFile != "" {
		if err := os.Remove(c.cfg.TokenFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("bootstrap token file not removed; remove it by hand", "file", c.cfg.TokenFile, "err", err)
		} else {
			c.log.Info("bootstrap token file removed", "file", c.cfg.TokenFile)
		}
	}
	return nil
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
	cert := &tls.Certificate{Certificate: [][]byte{id.CertDER}, PrivateKey: key}
	c.cert = cert
	c.mu.Unlock()
	err := c.store.SetIdentity(id)
	c.creds.set(cert, id.CADER, id.Account)
	return err
}

// RenewLoop renews the certificate in the background when two thirds of its
// life have passed, even while the control stream stays up. It returns when
// ctx ends.
func (c *Client) RenewLoop(ctx context.Context) {
	t := c.clock.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			if left := c.certLeft(c.cfg.Now()); left > 0 && left <= 1.0/3 {
				if err := c.renew(ctx); err != nil {
					c.log.Warn("certificate renewal failed", "err", err)
				}
			}
		}
	}
}
