package provider

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

type countLists struct {
	rt    http.RoundTripper
	lists *atomic.Int64
}

func (c countLists) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/secrets") && r.URL.Query().Get("watch") == "" {
		c.lists.Add(1)
	}
	return c.rt.RoundTrip(r)
}

// TestSecretTokens checks bootstrap tokens against a real API server: the
// default TTL of a token without expiration, an explicit expiration, a
// single-use token consumed once by two racing joins, revocation by
// deleting the Secret, and that a call lists no Secrets.
func TestSecretTokens(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	ctx := t.Context()
	const ns = "edgefabric-system"
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var lists atomic.Int64
	rc := rest.CopyConfig(env.Config)
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countLists{rt: rt, lists: &lists} })
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, data map[string]string) {
		t.Helper()
		if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Type: efv1.SecretTypeBootstrapToken, StringData: data,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create("plain", map[string]string{TokenKey: "plain-token", AccountKey: "acme"})
	create("dated", map[string]string{TokenKey: "dated-token", AccountKey: "acme", ExpirationKey: time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)})
	create("once", map[string]string{TokenKey: "once-token", AccountKey: "acme", UsageKey: UsageOnce})
	create("revoked", map[string]string{TokenKey: "revoked-token", AccountKey: "acme"})
	// Not a bootstrap token although it has the keys.
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "opaque"}, StringData: map[string]string{TokenKey: "opaque-token", AccountKey: "acme"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var clk atomic.Int64
	clk.Store(time.Now().UnixNano())
	toks := NewSecretTokens(client, ns, 24*time.Hour, func() time.Time { return time.Unix(0, clk.Load()) })
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- toks.Run(rctx) }()
	t.Cleanup(func() { stop(); <-ran }) //nolint:errcheck // it ends as stopped

	wantAccount := func(token, want string) {
		t.Helper()
		got, err := toks.Account(ctx, token)
		if want == "acme" {
			if err != nil || got != "acme" {
				t.Errorf("token %s: got %q, %v, want account acme", token, got, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("token %s: got %q, %v, want an error containing %q", token, got, err, want)
		}
	}
	wantAccount("plain-token", "acme")
	wantAccount("opaque-token", "unknown token")
	wantAccount("", "no token given")

	// A call lists nothing, once the cache is filled.
	before := lists.Load()
	for range 20 {
		wantAccount("guessed-token", "unknown token")
	}
	wantAccount("plain-token", "acme")
	if n := lists.Load() - before; n != 0 {
		t.Errorf("%d LISTs of Secrets for 21 calls, want none", n)
	}

	// Deleting the Secret revokes the token at once.
	if err := env.Client.CoreV1().Secrets(ns).Delete(ctx, "revoked", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantAccount("revoked-token", "unknown token")

	// Single use: of two joins racing to spend it, one wins.
	wantAccount("once-token", "acme")
	if err := toks.Spend(ctx, "plain-token"); err != nil {
		t.Errorf("spend a reusable token: %v", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = toks.Spend(ctx, "once-token") }()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("two spends of a single-use token: got %v and %v, want exactly one to succeed", errs[0], errs[1])
	}
	wantAccount("once-token", "unknown token")
	wantAccount("plain-token", "acme")

	// Without an expiration a token lasts the TTL from its creation.
	clk.Add(int64(25 * time.Hour))
	wantAccount("plain-token", "it sets no expiration, so it lasted 24h0m0s from its creation")
	wantAccount("dated-token", "acme")
	clk.Add(int64(48 * time.Hour))
	wantAccount("dated-token", "token expired at")
}
