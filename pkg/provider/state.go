package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/edgefabric/edgefabric/pkg/identity"
)

// Names of the provider's Secrets.
const (
	// CASecretName holds the fabric CA (keys tls.crt, tls.key) in the provider's namespace.
	CASecretName = "edgefabric-ca"
	// Bootstrap-token Secrets (type efv1.SecretTypeBootstrapToken) hold
	// the token (TokenKey), the account (AccountKey), optionally an RFC 3339
	// expiry (ExpirationKey; without one a token expires the provider's
	// token TTL after the Secret's creation) and optionally UsageKey:
	// UsageOnce.
)

// Keys of a bootstrap-token Secret's data.
const (
	TokenKey      = "token"
	AccountKey    = "account"
	ExpirationKey = "expiration"
	// UsageKey set to UsageOnce makes a single-use token: the Secret is
	// deleted when the token enrols a device.
	UsageKey  = "usage"
	UsageOnce = "once"
)

func loadOrCreateCA(ctx context.Context, cfg Config, client kubernetes.Interface) (*identity.CA, error) {
	if cfg.StateDir != "" {
		return caFromDir(cfg.StateDir)
	}
	secrets := client.CoreV1().Secrets(cfg.Namespace)
	for range 3 {
		s, err := secrets.Get(ctx, CASecretName, metav1.GetOptions{})
		if err == nil {
			return identity.LoadCA(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("read secret %s/%s: %w", cfg.Namespace, CASecretName, err)
		}
		ca, err := identity.NewCA("edgefabric-ca", time.Now())
		if err != nil {
			return nil, err
		}
		c, k, err := ca.PEM()
		if err != nil {
			return nil, err
		}
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: CASecretName, Namespace: cfg.Namespace},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: c, corev1.TLSPrivateKeyKey: k},
		}, metav1.CreateOptions{})
		if err == nil {
			return ca, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create secret %s/%s: %w", cfg.Namespace, CASecretName, err)
		}
		// Another replica won the race: read its CA.
	}
	return nil, errors.New("CA secret keeps changing")
}

func caFromDir(dir string) (*identity.CA, error) {
	cp, kp := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	c, cerr := os.ReadFile(cp)
	k, kerr := os.ReadFile(kp)
	if cerr == nil && kerr == nil {
		return identity.LoadCA(c, k)
	}
	if !os.IsNotExist(cerr) || !os.IsNotExist(kerr) {
		return nil, fmt.Errorf("read %s: %w", dir, errors.Join(cerr, kerr))
	}
	ca, err := identity.NewCA("edgefabric-ca", time.Now())
	if err != nil {
		return nil, err
	}
	if c, k, err = ca.PEM(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// The key first, so a reader that sees ca.crt finds the pair complete.
	if err := os.WriteFile(kp, k, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cp+".tmp", c, 0o644); err != nil {
		return nil, err
	}
	return ca, os.Rename(cp+".tmp", cp)
}
