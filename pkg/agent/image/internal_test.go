package image

import (
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

func TestSchemePolicy(t *testing.T) {
	s, err := New(Config{Dir: t.TempDir(), InsecureRegistries: []string{"reg.lan:5000", "10.1.2.3"}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want bool // reaches the base transport
	}{
		{"http://127.0.0.1:5000/v2/", true},
		{"http://127.9.9.9/v2/", true},
		{"http://localhost:5000/v2/", true},
		{"http://[::1]:5000/v2/", true},
		{"http://reg.lan:5000/v2/", true},
		{"http://reg.lan:5001/v2/", false},
		{"http://reg.lan/v2/", false},
		{"http://10.1.2.3:443/v2/", true},
		{"http://10.1.2.4:5000/v2/", false},
		{"http://192.168.1.10:5000/v2/", false}, // go-containerregistry would fall back to HTTP here
		{"http://ghcr.io/v2/", false},
		{"https://ghcr.io/v2/", true},
		{"https://192.168.1.10:5000/v2/", true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			reached := false
			p := &schemePolicy{
				base: roundTripFunc(func(*http.Request) (*http.Response, error) {
					reached = true
					return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(""))}, nil
				}),
				allowHTTP: s.allowHTTP,
			}
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := p.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if reached != tt.want {
				t.Errorf("request reached the transport: %v, want %v (err %v)", reached, tt.want, err)
			}
			if !tt.want && (err == nil || !strings.Contains(err.Error(), "not allowed")) {
				t.Errorf("error %v, want one saying plain HTTP is not allowed", err)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestAgentDependencies keeps the device-side packages free of the
// Kubernetes libraries, which the agent must not link.
func TestAgentDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-deps", "./pkg/agent/image", "./pkg/agent/runtime/wasm", "./pkg/agent/logs")
	cmd.Dir = ocitest.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/", "sigs.k8s.io/", "github.com/virtual-kubelet/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("agent package depends on %s", dep)
			}
		}
	}
}
