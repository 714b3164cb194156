package revocation_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/revocation"
	"github.com/edgefabric/edgefabric/test/kubetest"
)

// TestStorePersistsAndExpires revokes devices, opens the store again from
// the same backend (a restarted provider) and checks what is still revoked
// at later times, for both backends.
func TestStorePersistsAndExpires(t *testing.T) {
	env := kubetest.Start(t, kubetest.Options{})
	if _, err := env.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "edgefabric-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	backends := []struct {
		name string
		b    revocation.Backend
	}{
		{name: "file", b: revocation.File{Path: filepath.Join(t.TempDir(), "state", "revocations.json")}},
		{name: "configmap", b: revocation.ConfigMap{Client: env.Client, Namespace: "edgefabric-system", Name: "edgefabric-revocations"}},
	}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 300_000_000, time.UTC)
	pi := identity.Device{Account: "acme", ID: "pi-1"}
	gw := identity.Device{Account: "acme", ID: "gw-2"}
	other := identity.Device{Account: "globex", ID: "pi-1"}
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			ctx := t.Context()
			s, err := revocation.Open(ctx, bc.b, t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Revoked(pi, t0); ok {
				t.Fatal("an empty store revokes pi-1")
			}
			e, err := s.Revoke(ctx, pi, t0, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if want := time.Date(2026, 11, 27, 10, 0, 1, 0, time.UTC); !e.At.Equal(want) || !e.Expires.Equal(want.Add(time.Hour)) {
				t.Errorf("got entry %+v, want at %s (rounded up), expiring an hour later", e, want)
			}
			if _, err := s.Revoke(ctx, gw, t0.Add(30*time.Minute), 2*time.Hour); err != nil {
				t.Fatal(err)
			}
			steps := []struct {
				name  string
				at    time.Duration
				d     identity.Device
				want  bool
				atSec int64 // want entry At, seconds after t0's whole second
			}{
				{name: "revoked device", at: time.Minute, d: pi, want: true, atSec: 1},
				{name: "same id in another account", at: time.Minute, d: other},
				{name: "second device", at: 40 * time.Minute, d: gw, want: true, atSec: 30*60 + 1},
				{name: "first entry expired with its certificates", at: 61 * time.Minute, d: pi},
				{name: "second entry still there", at: 61 * time.Minute, d: gw, want: true, atSec: 30*60 + 1},
				{name: "second entry expired", at: 151 * time.Minute, d: gw},
			}
			// A new store over the same backend sees what the first saved.
			again, err := revocation.Open(ctx, bc.b, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range steps {
				got, ok := again.Revoked(st.d, t0.Add(st.at))
				if ok != st.want {
					t.Errorf("%s: revoked %v, want %v", st.name, ok, st.want)
					continue
				}
				if ok && !got.At.Equal(t0.Truncate(time.Second).Add(time.Duration(st.atSec)*time.Second)) {
					t.Errorf("%s: got at %s", st.name, got.At)
				}
			}
			// Expired entries are dropped when the store is opened.
			late, err := revocation.Open(ctx, bc.b, t0.Add(90*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := late.Revoke(ctx, other, t0.Add(90*time.Minute), time.Hour); err != nil {
				t.Fatal(err)
			}
			data, err := bc.b.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			reopened, err := revocation.Open(ctx, bc.b, t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := reopened.Revoked(pi, t0.Add(time.Minute)); ok {
				t.Errorf("pi-1's expired entry was saved again: %s", data)
			}
			if _, ok := reopened.Revoked(other, t0.Add(91*time.Minute)); !ok {
				t.Errorf("globex/pi-1 not saved: %s", data)
			}
		})
	}
}

// TestOpenRejectsGarbage checks that unreadable saved entries are an error,
// not a crash or an empty store.
func TestOpenRejectsGarbage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "revocations.json")
	b := revocation.File{Path: p}
	if err := b.Save(t.Context(), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := revocation.Open(t.Context(), b, time.Now()); err == nil {
		t.Fatal("got no error for a corrupt file")
	}
}
