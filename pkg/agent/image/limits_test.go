package image_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

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

// TestPullRefusesBlobsOverTheBudget: a layer larger than the whole cache
// budget is refused before it is downloaded.
func TestPullRefusesBlobsOverTheBudget(t *testing.T) {
	reg := ocitest.NewRegistry(t)
	big := append(tiny(t), make([]byte, 8<<10)...)
	ocitest.Push(t, reg.Addr+"/big:v1", big, ocitest.WasmArtifact)
	var blobGets atomic.Int64
	addr := hostileRegistry(t, reg.Addr, map[string]http.HandlerFunc{
		"/blobs/" + digestOf(big): func(w http.ResponseWriter, r *http.Request) {
			blobGets.Add(1)
			_, _ = w.Write(big)
		},
	})
	_, err := storeWith(t, image.Config{MaxBytes: 4 << 10}).Pull(t.Context(), addr+"/big:v1", image.PullIfNotPresent)
	if err == nil {
		t.Fatal("Pull of a layer over the budget succeeded")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, image.ErrTooLarge) {
		t.Errorf("error %v is not ErrTooLarge", err)
	}
	for _, want := range []string{digestOf(big), "4.0 KiB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if n := blobGets.Load(); n != 0 {
		t.Errorf("the layer was downloaded %d times, want never", n)
	}
}

// gzipBomb is a gzip tar layer with the module at /app/m.wasm and a file
// of size zeros: small on the wire, large unpacked.
func gzipBomb(t *testing.T, size int64, module []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "app/m.wasm", Mode: 0o644, Size: int64(len(module))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(module); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(zeros)) {
		if _, err := tw.Write(zeros[:min(left, int64(len(zeros)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPullRefusesGzipBomb: a layer that is small compressed but unpacks to
// more than the cache allows is refused, for WASM images (whose layers are
// only read) and native ones (unpacked to disk).
func TestPullRefusesGzipBomb(t *testing.T) {
	reg := ocitest.Serve(t)
	bomb := gzipBomb(t, 64<<20, tiny(t))
	t.Logf("bomb: %d bytes compressed, 64 MiB unpacked", len(bomb))
	for _, tt := range []struct {
		name     string
		platform string // the store's and the image's
		os, arch string
	}{
		{name: "wasm", os: "wasip1", arch: "wasm"},
		{name: "native", platform: "linux/amd64", os: "linux", arch: "amd64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ref := reg + "/bomb-" + tt.name + ":v1"
			r, err := name.ParseReference(ref)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := (&configJSON{&v1.ConfigFile{OS: tt.os, Architecture: tt.arch, Config: v1.Config{Entrypoint: []string{"/app/m.wasm"}}}}).marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ocitest.PushRaw(t.Context(), r, string(types.OCIConfigJSON), cfg,
				[]ocitest.RawLayer{{MediaType: string(types.OCILayer), Data: bomb}}); err != nil {
				t.Fatal(err)
			}
			store := storeWith(t, image.Config{Platform: tt.platform, MaxBytes: 1 << 30, MaxUnpackedBytes: 8 << 20})
			_, err = store.Pull(t.Context(), ref, image.PullIfNotPresent)
			if err == nil {
				t.Fatal("Pull of a gzip bomb succeeded")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, image.ErrTooLarge) {
				t.Errorf("error %v is not ErrTooLarge", err)
			}
			if !strings.Contains(err.Error(), "unpacks to more than 8.0 MiB") {
				t.Errorf("error %q does not say the layer unpacks to more than 8.0 MiB", err)
			}
		})
	}
}

// TestPullTimeouts: a registry that stops sending (before its headers or
// in the middle of a body) is given up on after the progress timeout, and
// one that trickles is given up on after the pull timeout; the error names
// the timeout, as the pod's ErrImagePull message will.
func TestPullTimeouts(t *testing.T) {
	upstream := ocitest.Serve(t)
	module := append(tiny(t), make([]byte, 4<<10)...)
	ocitest.Push(t, upstream+"/slow:v1", module, ocitest.WasmArtifact)
	stall := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	tests := []struct {
		name     string
		cfg      image.Config
		override map[string]http.HandlerFunc
		want     []string
	}{
		{
			name:     "stalls before the manifest's headers",
			cfg:      image.Config{ProgressTimeout: 300 * time.Millisecond},
			override: map[string]http.HandlerFunc{"/manifests/v1": stall},
			want:     []string{"no data from the registry for 300ms", "image pull progress timeout"},
		},
		{
			name: "stalls in the middle of a layer",
			cfg:  image.Config{ProgressTimeout: 300 * time.Millisecond},
			override: map[string]http.HandlerFunc{
				"/blobs/" + digestOf(module): func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Length", fmt.Sprint(len(module)))
					_, _ = w.Write(module[:1000])
					w.(http.Flusher).Flush()
					<-r.Context().Done()
				},
			},
			want: []string{"no data from the registry for 300ms", "image pull progress timeout"},
		},
		{
			name: "trickles",
			cfg:  image.Config{ProgressTimeout: time.Minute, PullTimeout: 500 * time.Millisecond},
			override: map[string]http.HandlerFunc{
				"/blobs/" + digestOf(module): func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusOK)
					for i := range module {
						if _, err := w.Write(module[i : i+1]); err != nil {
							return
						}
						w.(http.Flusher).Flush()
						select {
						case <-r.Context().Done():
							return
						case <-time.After(50 * time.Millisecond):
						}
					}
				},
			},
			want: []string{"not done within 500ms", "image pull timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := hostileRegistry(t, upstream, tt.override)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			start := time.Now()
			_, err := storeWith(t, tt.cfg).Pull(ctx, addr+"/slow:v1", image.PullIfNotPresent)
			if err == nil {
				t.Fatal("Pull succeeded")
			}
			t.Logf("error after %s: %v", time.Since(start), err)
			if ctx.Err() != nil {
				t.Fatal("the pull was not given up on before the test's deadline")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// corrupt changes a byte in the middle of the file at path, as a crash
// before the data reached the disk or a failing flash cell might.
func corrupt(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptCacheIsPulledAgain: after a restart, a cached module or blob
// whose content no longer has its digest, or a cache entry that no longer
// parses, is noticed on first use: the image is pulled again, and the
// corrupt bytes are never handed out to run.
func TestCorruptCacheIsPulledAgain(t *testing.T) {
	reg := ocitest.Serve(t)
	module := tiny(t)
	tests := []struct {
		name      string
		packaging ocitest.Packaging
		damage    func(t *testing.T, dir string, a *image.Artifact)
	}{
		{"module of an artifact", ocitest.WasmArtifact, func(t *testing.T, _ string, a *image.Artifact) { corrupt(t, a.ModulePath) }},
		{"module of an image", ocitest.Image, func(t *testing.T, _ string, a *image.Artifact) { corrupt(t, a.ModulePath) }},
		{"module truncated", ocitest.Image, func(t *testing.T, _ string, a *image.Artifact) {
			if err := os.Truncate(a.ModulePath, 3); err != nil {
				t.Fatal(err)
			}
		}},
		{"image record", ocitest.Image, func(t *testing.T, dir string, a *image.Artifact) {
			path := filepath.Join(dir, "images", "sha256", strings.TrimPrefix(a.ImageID, "sha256:")+".json")
			if err := os.WriteFile(path, []byte(`{"imageID":`), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"reference entry", ocitest.Image, func(t *testing.T, dir string, a *image.Artifact) {
			for _, e := range dirEntries(t, filepath.Join(dir, "refs")) {
				if err := os.WriteFile(filepath.Join(dir, "refs", e), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := fmt.Sprintf("%s/corrupt-%d:v1", reg, i)
			ocitest.Push(t, ref, module, tt.packaging)
			dir := t.TempDir()
			a, err := newStore(t, dir).Pull(t.Context(), ref, image.PullIfNotPresent)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir, a)

			// A new Store on the same directory, as after a crash.
			store := newStore(t, dir)
			if a, err := store.Lookup(ref); !errors.Is(err, image.ErrNotPresent) {
				t.Errorf("Lookup of the damaged image = %+v, %v; want ErrNotPresent", a, err)
			}
			if a, err := store.Pull(t.Context(), ref, image.PullNever); err == nil {
				t.Errorf("Pull Never of the damaged image = %+v, want an error", a)
			}
			got, err := store.Pull(t.Context(), ref, image.PullIfNotPresent)
			if err != nil {
				t.Fatalf("Pull IfNotPresent of the damaged image: %v", err)
			}
			if b, err := os.ReadFile(got.ModulePath); err != nil || !bytes.Equal(b, module) {
				t.Errorf("module after the pull differs from the pushed one (err %v)", err)
			}
		})
	}
}

// TestCorruptLayerIsNotUsed: a corrupt cached layer is neither used to
// find another module of the image (kubectl exec) nor reused by a pull of
// another image that shares it.
func TestCorruptLayerIsNotUsed(t *testing.T) {
	reg := ocitest.Serve(t)
	module := tiny(t)
	ref := reg + "/layer:v1"
	pushImage(t, ref, v1.Config{Entrypoint: []string{"/m.wasm"}},
		[]ocitest.File{{Path: "/other.wasm", Data: module}},
		[]ocitest.File{{Path: "/m.wasm", Data: module}})
	dir := t.TempDir()
	a, err := newStore(t, dir).Pull(t.Context(), ref, image.PullIfNotPresent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range dirEntries(t, filepath.Join(dir, "blobs", "sha256")) {
		path := filepath.Join(dir, "blobs", "sha256", e)
		if b, _ := os.ReadFile(path); len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b { // the gzip layers
			corrupt(t, path)
		}
	}
	store := newStore(t, dir)
	if p, err := store.ImageModule(a.ImageID, "/other.wasm"); err == nil {
		t.Errorf("ImageModule from a corrupt layer = %s, want an error", p)
	} else {
		t.Logf("error: %v", err)
	}
	// Another image with the same layers (and another config) pulls them again.
	ref2 := reg + "/layer:v2"
	pushImage(t, ref2, v1.Config{Entrypoint: []string{"/other.wasm"}},
		[]ocitest.File{{Path: "/other.wasm", Data: module}},
		[]ocitest.File{{Path: "/m.wasm", Data: module}})
	b, err := store.Pull(t.Context(), ref2, image.PullIfNotPresent)
	if err != nil {
		t.Fatalf("Pull of an image sharing the corrupt layers: %v", err)
	}
	if got, err := os.ReadFile(b.ModulePath); err != nil || !bytes.Equal(got, module) {
		t.Errorf("module differs from the pushed one (err %v)", err)
	}
	if p, err := store.ImageModule(b.ImageID, "/m.wasm"); err != nil {
		t.Errorf("ImageModule after the layers were pulled again: %v", err)
	} else if got, _ := os.ReadFile(p); !bytes.Equal(got, module) {
		t.Errorf("ImageModule's module differs from the pushed one")
	}
}
