package provider

import (
	"context"
	"crypto/subtle"
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
	// BootstrapTokenType is the type of bootstrap-token Secrets. Their data
	// names the token ("token"), the account ("account") and optionally an
	// RFC 3339 expiry ("expiration").
	BootstrapTokenType corev1.SecretType = "edgefabric.io/bootstrap-token"
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

// SecretTokens checks bootstrap tokens against the bootstrap-token Secrets of
// one namespace.
type SecretTokens struct {
	Client    kubernetes.Interface
	Namespace string
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
}

// Account implements hub.Tokens.
func (t SecretTokens) Account(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", errors.New("no token given")
	}
	l, err := t.Client.CoreV1().Secrets(t.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(BootstrapTokenType)})
	if err != nil {
		return "", fmt.Errorf("look up tokens: %w", err)
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	for _, s := range l.Items {
		if subtle.ConstantTimeCompare(s.Data["token"], []byte(token)) != 1 {
			continue
		}
		if exp := string(s.Data["expiration"]); exp != "" {
			at, err := time.Parse(time.RFC3339, exp)
			if err != nil {
				return "", fmt.Errorf("token %s has an unreadable expiration %q", s.Name, exp)
			}
			if now().After(at) {
				return "", fmt.Errorf("token expired at %s", exp)
			}
		}
		account := string(s.Data["account"])
		if err := identity.ValidName(account); err != nil {
			return "", fmt.Errorf("token %s names a bad account: %w", s.Name, err)
		}
		return account, nil
	}
	return "", errors.New("unknown token")
}
