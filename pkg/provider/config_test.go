package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/identity"
)

func TestKubeletAuthValidate(t *testing.T) {
	ca, err := identity.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _, err := ca.PEM()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		ka      KubeletAuth
		wantErr string
	}{
		{"tokens only", KubeletAuth{}, ""},
		{"client CA", KubeletAuth{ClientCA: caPEM}, ""},
		{"not PEM", KubeletAuth{ClientCA: []byte("not a certificate")}, "no PEM certificate"},
		{"off ignores the CA", KubeletAuth{Disabled: true, ClientCA: []byte("x")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ka.validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("validate: got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
