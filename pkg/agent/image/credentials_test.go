package image_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestPullTakesNoCredentialsFromTheDevice: the agent pulls anonymously. A
// registry login left on the device (~/.docker/config.json, $DOCKER_CONFIG,
// podman's auth.json) is never sent, although go-containerregistry, which
// the agent links, can read those files (authn.DefaultKeychain; see
// docs/dependencies.md).
func TestPullTakesNoCredentialsFromTheDevice(t *testing.T) {
	var requireAuth atomic.Bool
	var withAuth atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			withAuth.Add(1)
		} else if requireAuth.Load() {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	ref := host + "/private:v1"
	ocitest.Push(t, ref, tiny(t), ocitest.WasmArtifact)
	requireAuth.Store(true)

	// Every place a docker or podman login writes credentials to.
	home := t.TempDir()
	config := fmt.Appendf(nil, `{"auths": {%q: {"auth": %q}}}`, host, base64.StdEncoding.EncodeToString([]byte("device:secret")))
	for _, f := range []string{".docker/config.json", "docker/config.json", ".config/containers/auth.json", "run/containers/auth.json", "auth.json"} {
		p := filepath.Join(home, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, config, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, "docker"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "run"))
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(home, "auth.json"))

	_, err := newStore(t, "").Pull(t.Context(), ref, image.PullAlways)
	if err == nil {
		t.Fatal("pull from a registry that wants credentials succeeded")
	}
	if errors.Is(err, image.ErrNotFound) {
		t.Errorf("got %v, want the registry's refusal", err)
	}
	if n := withAuth.Load(); n != 0 {
		t.Errorf("the registry got %d requests with credentials, want none", n)
	}
}
