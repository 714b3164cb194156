package image

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
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

// TestPickPlatformReportsTheImagesPlatforms: an index with nothing this
// device can run says which platforms it has, as os/arch, once each.
func TestPickPlatformReportsTheImagesPlatforms(t *testing.T) {
	digest := func(s string) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(s, 64)} }
	idx := v1.IndexManifest{SchemaVersion: 2, Manifests: []v1.Descriptor{
		{MediaType: types.OCIManifestSchema1, Digest: digest("a"), Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}},
		{MediaType: types.OCIManifestSchema1, Digest: digest("b"), Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{MediaType: types.OCIManifestSchema1, Digest: digest("c"), Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
	}}
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pickPlatform(raw, &v1.Platform{OS: "linux", Architecture: "amd64"})
	var pe *PlatformError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a *PlatformError", err)
	}
	if want := []string{"linux/arm64", "linux/arm"}; !slices.Equal(pe.Platforms, want) {
		t.Errorf("platforms: got %v, want %v", pe.Platforms, want)
	}
	if !strings.Contains(err.Error(), "linux/arm/v7") {
		t.Errorf("message %q does not name the variants", err)
	}
	// The device's own platform is picked.
	if d, err := pickPlatform(raw, &v1.Platform{OS: "linux", Architecture: "arm64"}); err != nil || d.Platform.Architecture != "arm64" {
		t.Errorf("arm64 device: got %v, %v", d.Platform, err)
	}
}
