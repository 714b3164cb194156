package fleet_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/fabric"
	"github.com/edgefabric/edgefabric/pkg/provider/fleet"
)

func device(account, id string) fabric.Device {
	return fabric.Device{Device: identity.Device{Account: account, ID: id}}
}

func TestName(t *testing.T) {
	tests := []struct {
		account, id string
		want        string // "" when only the prefix is checked
		prefix      string
	}{
		{account: "acme", id: "pi-1", want: "acme.pi-1"},
		{account: "a.b", id: "c", prefix: "a-b.c."},
		{account: "a", id: "b.c", prefix: "a.b-c."},
		{account: strings.Repeat("a", 63), id: strings.Repeat("b", 63), want: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63)},
	}
	for _, tt := range tests {
		got := fleet.Name(device(tt.account, tt.id))
		if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
			t.Errorf("Name(%q, %q) = %q: %v", tt.account, tt.id, got, errs)
		}
		if tt.want != "" && got != tt.want {
			t.Errorf("Name(%q, %q) = %q, want %q", tt.account, tt.id, got, tt.want)
		}
		if !strings.HasPrefix(got, tt.prefix) {
			t.Errorf("Name(%q, %q) = %q, want prefix %q", tt.account, tt.id, got, tt.prefix)
		}
	}
}

// FuzzNameInjective: two devices of different (account, ID) never share an
// EdgeDevice, whatever dots their names hold.
func FuzzNameInjective(f *testing.F) {
	f.Add("a.b", "c", "a", "b.c")
	f.Add("acme", "pi-1", "acme", "pi-2")
	f.Add("acme.eu", "pi", "acme", "eu.pi")
	f.Fuzz(func(t *testing.T, a1, i1, a2, i2 string) {
		if identity.ValidName(a1) != nil || identity.ValidName(i1) != nil || identity.ValidName(a2) != nil || identity.ValidName(i2) != nil {
			t.Skip("not device names")
		}
		n1, n2 := fleet.Name(device(a1, i1)), fleet.Name(device(a2, i2))
		if (a1 != a2 || i1 != i2) && n1 == n2 {
			t.Errorf("Name(%q, %q) = Name(%q, %q) = %q", a1, i1, a2, i2, n1)
		}
		if errs := validation.IsDNS1123Subdomain(n1); len(errs) > 0 {
			t.Errorf("Name(%q, %q) = %q: %v", a1, i1, n1, errs)
		}
	})
}
