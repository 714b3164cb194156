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

func TestReportedPodIP(t *testing.T) {
	own := []string{"10.1.2.3", "fd00::3"}
	tests := []struct {
		name         string
		reported     string
		addresses    []string
		want, reject string
	}{
		{name: "none reported", want: "10.1.2.3", addresses: own},
		{name: "its first address", reported: "10.1.2.3", addresses: own, want: "10.1.2.3"},
		{name: "its other address", reported: "fd00::3", addresses: own, want: "fd00::3"},
		{name: "its address, mapped", reported: "::ffff:10.1.2.3", addresses: own, want: "10.1.2.3"},
		{name: "another machine's address", reported: "10.96.0.1", addresses: own, want: "10.1.2.3", reject: "10.96.0.1"},
		{name: "loopback", reported: "127.0.0.1", addresses: own, want: "10.1.2.3", reject: "127.0.0.1"},
		{name: "not an IP", reported: "kubernetes.default", addresses: own, want: "10.1.2.3", reject: "kubernetes.default"},
		{name: "a device with no address", reported: "10.1.2.3", want: "", reject: "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip, rejected := reportedPodIP(tt.reported, tt.addresses)
			if ip != tt.want || rejected != tt.reject {
				t.Errorf("reportedPodIP(%q, %v) = %q, %q; want %q, %q", tt.reported, tt.addresses, ip, rejected, tt.want, tt.reject)
			}
		})
	}
}

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
