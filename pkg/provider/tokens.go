package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/hub"
)

// DefaultTokenTTL is how long a bootstrap token without an expiration lasts
// from its Secret's creation.
const DefaultTokenTTL = 24 * time.Hour

// SecretTokens checks bootstrap tokens against the bootstrap-token Secrets
// of one namespace. An informer keeps them indexed by the token's SHA-256,
// so a call lists nothing: a token found there is read once more by name (a
// deleted Secret revokes its token at once), and an unknown token costs no
// API call. Run must be running; Account waits for the first sync.
type SecretTokens struct {
	client    kubernetes.Interface
	namespace string
	ttl       time.Duration
	now       func() time.Time
	inf       toolscache.SharedIndexInformer
	factory   informers.SharedInformerFactory
}

var _ hub.Tokens = (*SecretTokens)(nil)

const tokenIndex = "token-sha256"

// NewSecretTokens returns the tokens of namespace's bootstrap-token
// Secrets. ttl is the lifetime of a token whose Secret names no
// expiration (zero means DefaultTokenTTL); now is the clock (nil means
// time.Now).
func NewSecretTokens(client kubernetes.Interface, namespace string, ttl time.Duration, now func() time.Time) *SecretTokens {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if now == nil {
		now = time.Now
	}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "type=" + string(efv1.SecretTypeBootstrapToken) }))
	inf := f.Core().V1().Secrets().Informer()
	_ = inf.AddIndexers(toolscache.Indexers{tokenIndex: func(obj any) ([]string, error) {
		s, ok := obj.(*corev1.Secret)
		if !ok || len(s.Data[TokenKey]) == 0 {
			return nil, nil
		}
		return []string{tokenSum(string(s.Data[TokenKey]))}, nil
	}})
	return &SecretTokens{client: client, namespace: namespace, ttl: ttl, now: now, inf: inf, factory: f}
}

func tokenSum(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// Run keeps the cache until ctx ends and returns once the informer stopped.
func (t *SecretTokens) Run(ctx context.Context) error {
	t.factory.Start(ctx.Done())
	<-ctx.Done()
	t.factory.Shutdown()
	return nil
}

// Account implements hub.Tokens.
func (t *SecretTokens) Account(ctx context.Context, token string) (string, error) {
	s, err := t.lookup(ctx, token)
	if err != nil {
		return "", err
	}
	return t.check(s)
}

// Spend implements hub.Tokens: a single-use token's Secret is deleted, on
// the condition that it is the version Account checked, so of two joins
// with one token only one succeeds.
func (t *SecretTokens) Spend(ctx context.Context, token string) error {
	s, err := t.lookup(ctx, token)
	if err != nil {
		return err
	}
	if string(s.Data[UsageKey]) != UsageOnce {
		return nil
	}
	uid, rv := s.UID, s.ResourceVersion
	err = t.client.CoreV1().Secrets(t.namespace).Delete(ctx, s.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
	})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return errors.New("the single-use token was used already")
	case err != nil:
		return fmt.Errorf("consume single-use token %s: %w", s.Name, err)
	}
	return nil
}

// lookup returns the Secret of token as the API server has it now.
func (t *SecretTokens) lookup(ctx context.Context, token string) (*corev1.Secret, error) {
	if token == "" {
		return nil, errors.New("no token given")
	}
	if !t.inf.HasSynced() && !toolscache.WaitForCacheSync(ctx.Done(), t.inf.HasSynced) {
		return nil, errors.New("the provider has not read the bootstrap tokens yet")
	}
	objs, err := t.inf.GetIndexer().ByIndex(tokenIndex, tokenSum(token))
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	for _, o := range objs {
		cached, ok := o.(*corev1.Secret)
		if !ok || subtle.ConstantTimeCompare(cached.Data[TokenKey], []byte(token)) != 1 {
			continue
		}
		s, err := t.client.CoreV1().Secrets(t.namespace).Get(ctx, cached.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, errors.New("unknown token")
		}
		if err != nil {
			return nil, fmt.Errorf("read token %s: %w", cached.Name, err)
		}
		if s.Type != efv1.SecretTypeBootstrapToken || subtle.ConstantTimeCompare(s.Data[TokenKey], []byte(token)) != 1 {
			return nil, errors.New("unknown token")
		}
		return s, nil
	}
	return nil, errors.New("unknown token")
}

// check returns the account of token Secret s, or why it is refused.
func (t *SecretTokens) check(s *corev1.Secret) (string, error) {
	now := t.now()
	if exp := string(s.Data[ExpirationKey]); exp != "" {
		at, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return "", fmt.Errorf("token %s has an unreadable expiration %q", s.Name, exp)
		}
		if now.After(at) {
			return "", fmt.Errorf("token expired at %s", exp)
		}
	} else if at := s.CreationTimestamp.Add(t.ttl); now.After(at) {
		return "", fmt.Errorf("token expired at %s (it sets no expiration, so it lasted %s from its creation)", at.UTC().Format(time.RFC3339), t.ttl)
	}
	if u := string(s.Data[UsageKey]); u != "" && u != UsageOnce {
		return "", fmt.Errorf("token %s has an unknown usage %q (want %q or none)", s.Name, u, UsageOnce)
	}
	account := string(s.Data[AccountKey])
	if err := identity.ValidName(account); err != nil {
		return "", fmt.Errorf("token %s names a bad account: %w", s.Name, err)
	}
	return account, nil
}
