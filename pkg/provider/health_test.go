package provider

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	for _, tc := range []struct {
		state, path string
		wantCode    int
		wantBody    string
	}{
		{"starting", "/healthz", 200, "ok"},
		{"standby", "/healthz", 200, "ok"},
		{"starting", "/readyz", 503, "starting"},
		{"standby", "/readyz", 503, "standby"},
		{"serving", "/readyz", 200, "serving"},
		{"stopping", "/readyz", 503, "stopping"},
		{"serving", "/metrics", 200, "edgefabric_provider_serving 1"},
		{"standby", "/metrics", 200, "edgefabric_provider_serving 0"},
		{"serving", "/other", 404, ""},
	} {
		t.Run(tc.state+tc.path, func(t *testing.T) {
			h := newHealth()
			h.set(tc.state)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.wantCode || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("GET %s in state %s: got %d %q, want %d containing %q", tc.path, tc.state, rec.Code, rec.Body.String(), tc.wantCode, tc.wantBody)
			}
		})
	}
}

func TestLeaderElectionValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		le      LeaderElection
		wantErr string
	}{
		{"off", LeaderElection{}, ""},
		{"defaults", func() LeaderElection { l := LeaderElection{Enabled: true}; l.defaults(); return l }(), ""},
		{"lease not longer than renew", LeaderElection{Enabled: true, LeaseDuration: 10e9, RenewDeadline: 10e9, RetryPeriod: 1e9}, "lease duration"},
		{"renew not longer than retry", LeaderElection{Enabled: true, LeaseDuration: 10e9, RenewDeadline: 2e9, RetryPeriod: 2e9}, "renew deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.le.validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("validate: got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
