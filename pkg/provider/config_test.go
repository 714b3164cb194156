package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/hub"
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

func TestBootstrapLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lim     hub.BootstrapLimits
		wantErr string
	}{
		{"zero: the defaults", hub.BootstrapLimits{}, ""},
		{"set", hub.BootstrapLimits{PerSource: 0.5, PerSourceBurst: 5, Total: 50, TotalBurst: 500}, ""},
		{"negative rate", hub.BootstrapLimits{PerSource: -1}, "must not be negative"},
		{"negative burst", hub.BootstrapLimits{TotalBurst: -3}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{NodeIP: "10.0.0.1", HubListen: ":7443", KubeletListen: ":10250", BootstrapLimits: tc.lim}
			err := c.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate: got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
