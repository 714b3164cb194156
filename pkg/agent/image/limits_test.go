package image_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

// hostileRegistry serves the registry at upstream, except that GET
// requests whose path ends with one of the keys of override (a blob's
// "/blobs/sha256:<hex>" or a manifest's "/manifests/<tag>") are answered by
// the override. It returns the proxy's address.
func hostileRegistry(t *testing.T, upstream string, override map[string]http.HandlerFunc) string {
	t.Helper()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			for suffix, h := range override {
				if strings.HasSuffix(r.URL.Path, suffix) {
					h(w, r)
					return
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	// Close the handlers' connections first: a stalling handler returns
	// once its client is gone.
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.Listener.Addr().String()
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// storeWith opens a store on a new directory with cfg (Dir filled in).
func storeWith(t *testing.T, cfg image.Config) *image.Store {
	t.Helper()
	cfg.Dir = t.TempDir()
	s, err := image.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPullCutsOffBlobLargerThanItsDescriptor: a registry that sends more
// than the manifest says (here: without end) is cut off after the
// descriptor's size, with an error that says so, instead of filling the
// device's flash.
func TestPullCutsOffBlobLargerThanItsDescriptor(t *testing.T) {
	upstream := ocitest.Serve(t)
	module := tiny(t)
	ocitest.Push(t, upstream+"/endless:v1", module, ocitest.WasmArtifact)
	var sent atomic.Int64
	addr := hostileRegistry(t, upstream, map[string]http.HandlerFunc{
		"/blobs/" + digestOf(module): func(w http.ResponseWriter, r *http.Request) {
			// No Content-Length: the module, then zeros until the client hangs up.
			w.WriteHeader(http.StatusOK)
			n, _ := w.Write(module)
			sent.Add(int64(n))
			zeros := make([]byte, 32<<10)
			for r.Context().Err() == nil {
				n, err := w.Write(zeros)
				sent.Add(int64(n))
				if err != nil {
					return
				}
			}
		},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := storeWith(t, image.Config{}).Pull(ctx, addr+"/endless:v1", image.PullIfNotPresent)
	if err == nil {
		t.Fatal("Pull of an endless blob succeeded")
	}
	t.Logf("error: %v", err)
	for _, want := range []string{digestOf(module), "larger than"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if ctx.Err() != nil {
		t.Errorf("the pull ran until the test's deadline: it was not cut off")
	}
}
