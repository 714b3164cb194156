package node

import (
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	efv1 "github.com/edgefabric/edgefabric/pkg/apis/edgefabric/v1alpha1"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
)

// TestTenancyOfUncachedNamespace: a namespace the informer has not seen yet
// is read from the API server, not taken as unlabelled.
func TestTenancyOfUncachedNamespace(t *testing.T) {
	client := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b", Labels: map[string]string{efv1.LabelAccount: "other"}}})
	m, err := NewManager(Config{NodeIP: "127.0.0.1"}, client, fabric.New(slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// The informers never started: their caches are empty.
	why, err := m.tenancy(t.Context(), "team-b", "acme")
	if err != nil || why == "" {
		t.Errorf("tenancy of team-b (account other) for acme: %q, %v; want a reason", why, err)
	}
	if why, err := m.tenancy(t.Context(), "missing", "acme"); err == nil {
		t.Errorf("tenancy of a namespace that cannot be read: %q, no error", why)
	}
}
