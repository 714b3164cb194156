// Package ocitest provides test doubles for code that pulls wasm modules from
// OCI registries: an in-process registry (Serve), uploads of a module in each
// packaging the agent understands (Push, PushModule), and builders for the
// example modules (BuildGo, Wat2Wasm).
//
// Tests call Serve to get a registry address, Push a module built with
// BuildGo or Wat2Wasm under "<address>/<repo>:<tag>", and pull it with the
// agent's image store. PushModule has no testing dependency so that demo
// tools can reuse it.
package ocitest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Packaging is how a module is wrapped in an OCI artifact.
type Packaging string

const (
	// Image is an ordinary OCI image for wasip1/wasm whose filesystem holds
	// the module at ModulePath, named by the config's Entrypoint.
	Image Packaging = "image"
	// Index is an OCI index with a linux/amd64 image and the wasip1/wasm
	// Image.
	Index Packaging = "index"
	// WasmArtifact is the CNCF wasm OCI artifact: config media type
	// application/vnd.wasm.config.v0+json, one application/wasm layer.
	WasmArtifact Packaging = "wasm-artifact"
	// WasmToOCI is the format of the wasm-to-oci tool: one
	// application/vnd.wasm.content.layer.v1+wasm layer.
	WasmToOCI Packaging = "wasm-to-oci"
)

// Media types of the wasm packagings.
const (
	WasmConfigV0      = "application/vnd.wasm.config.v0+json"
	WasmLayer         = "application/wasm"
	WasmToOCIConfigV1 = "application/vnd.wasm.config.v1+json"
	WasmToOCILayer    = "application/vnd.wasm.content.layer.v1+wasm"
)

// ModulePath is where Image and Index put the module, and their Entrypoint.
const ModulePath = "/app/module.wasm"

// Serve starts an in-memory registry on 127.0.0.1 over plain HTTP and returns
// its "127.0.0.1:port" address. It is stopped by t.Cleanup.
func Serve(t testing.TB) string {
	t.Helper()
	return NewRegistry(t).Addr
}

// Registry is an in-memory registry on 127.0.0.1 over plain HTTP that counts
// the requests it serves.
type Registry struct {
	// Addr is "127.0.0.1:port".
	Addr string

	srv          *httptest.Server
	requests     atomic.Int64
	manifestGets atomic.Int64
}

// NewRegistry starts a Registry; it is stopped by t.Cleanup or Close.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r := &Registry{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/manifests/") {
			r.manifestGets.Add(1)
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.Addr = r.srv.Listener.Addr().String()
	return r
}

// Requests returns how many requests the registry has served.
func (r *Registry) Requests() int64 { return r.requests.Load() }

// ManifestGets returns how many GET requests for manifests it has served.
func (r *Registry) ManifestGets() int64 { return r.manifestGets.Load() }

// Close stops the registry, which then refuses connections. It may be
// called more than once.
func (r *Registry) Close() { r.srv.Close() }

// Push uploads module as ref ("host:port/repo:tag") in packaging p and returns
// the digest ("sha256:...") that the pulled artifact's ImageID will have: the
// manifest's, or for Index the wasip1/wasm image manifest's inside it.
func Push(t testing.TB, ref string, module []byte, p Packaging) string {
	t.Helper()
	digest, err := PushModule(t.Context(), ref, module, p)
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

// PushModule is Push without a test: it uploads module as ref in packaging p
// and returns the digest the pulled artifact's ImageID will have. Plain HTTP
// is tried if HTTPS does not answer.
func PushModule(ctx context.Context, ref string, module []byte, p Packaging) (string, error) {
	digest, err := pushModule(ctx, ref, module, p)
	if err != nil {
		return "", fmt.Errorf("push %s as %s: %w", ref, p, err)
	}
	return digest, nil
}

func pushModule(ctx context.Context, ref string, module []byte, p Packaging) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	switch p {
	case Image:
		img, err := WasmImage(module)
		if err != nil {
			return "", err
		}
		if err := remote.Write(r, img, opts...); err != nil {
			return "", err
		}
		d, err := img.Digest()
		return d.String(), err
	case Index:
		img, err := WasmImage(module)
		if err != nil {
			return "", err
		}
		native, err := nativeImage()
		if err != nil {
			return "", err
		}
		idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
			mutate.IndexAddendum{Add: native, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
			mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "wasip1", Architecture: "wasm"}}},
		)
		if err := remote.WriteIndex(r, idx, opts...); err != nil {
			return "", err
		}
		d, err := img.Digest()
		return d.String(), err
	case WasmArtifact:
		digest := sha256.Sum256(module)
		config, err := json.Marshal(map[string]any{
			"created":      time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
			"architecture": "wasm",
			"os":           "wasip1",
			"layerDigests": []string{"sha256:" + hex.EncodeToString(digest[:])},
		})
		if err != nil {
			return "", err
		}
		return PushRaw(ctx, r, WasmConfigV0, config, []RawLayer{{MediaType: WasmLayer, Data: module}})
	case WasmToOCI:
		return PushRaw(ctx, r, WasmToOCIConfigV1, []byte("{}"), []RawLayer{{MediaType: WasmToOCILayer, Data: module}})
	default:
		return "", fmt.Errorf("unknown packaging %q", p)
	}
}

// WasmImage builds the wasip1/wasm OCI image that Push uses for Image: a
// first layer with /app/README and a second with the module at ModulePath,
// Entrypoint [ModulePath] and WorkingDir /app.
func WasmImage(module []byte) (v1.Image, error) {
	cfg := &v1.ConfigFile{
		OS:           "wasip1",
		Architecture: "wasm",
		Config: v1.Config{
			Entrypoint: []string{ModulePath},
			WorkingDir: "/app",
		},
	}
	return BuildImage(cfg,
		[]File{{Path: "/app/README", Data: []byte("module.wasm is the entrypoint\n")}},
		[]File{{Path: ModulePath, Data: module, Mode: 0o755}},
	)
}

func nativeImage() (v1.Image, error) {
	cfg := &v1.ConfigFile{
		OS:           "linux",
		Architecture: "amd64",
		Config:       v1.Config{Entrypoint: []string{"/bin/app"}},
	}
	return BuildImage(cfg, []File{{Path: "/bin/app", Data: []byte("\x7fELF not really"), Mode: 0o755}})
}

// File is an entry of an image layer built by BuildImage.
type File struct {
	// Path is absolute; parent directories are added as needed.
	Path string
	Data []byte
	// Mode is the permission bits; 0 means 0644.
	Mode int64
	// Linkname makes the entry a symbolic link to Linkname (Data unused).
	Linkname string
	// Whiteout makes the entry an OCI whiteout hiding Path in lower layers.
	Whiteout bool
}

// BuildImage builds an OCI image (gzip layers) with the given config and one
// layer per files slice, bottom first.
func BuildImage(cfg *v1.ConfigFile, layers ...[]File) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	for _, files := range layers {
		b, err := tarLayer(files)
		if err != nil {
			return nil, err
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	return img, nil
}

func tarLayer(files []File) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	dirs := map[string]bool{}
	modTime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		if len(f.Path) < 2 || f.Path[0] != '/' {
			return nil, fmt.Errorf("file path %q is not absolute", f.Path)
		}
		rel := f.Path[1:]
		// Parent directories first.
		for i := range len(rel) {
			if rel[i] == '/' && !dirs[rel[:i]] {
				dirs[rel[:i]] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel[:i] + "/", Mode: 0o755, ModTime: modTime}); err != nil {
					return nil, err
				}
			}
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: mode, Size: int64(len(f.Data)), ModTime: modTime}
		data := f.Data
		switch {
		case f.Whiteout:
			dir, base := splitPath(rel)
			h.Name, h.Size, data = dir+".wh."+base, 0, nil
		case f.Linkname != "":
			h.Typeflag, h.Linkname, h.Size, data = tar.TypeSymlink, f.Linkname, 0, nil
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func splitPath(p string) (dir, base string) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i+1], p[i+1:]
		}
	}
	return "", p
}

// RawLayer is a blob of a manifest pushed by PushRaw.
type RawLayer struct {
	MediaType string
	Data      []byte
}

// PushRaw uploads an OCI manifest with the given config and layers, byte for
// byte, and returns its digest. It is how artifacts that are not images are
// built.
func PushRaw(ctx context.Context, ref name.Reference, configType string, config []byte, layers []RawLayer) (string, error) {
	opts := []remote.Option{remote.WithContext(ctx)}
	configLayer := static.NewLayer(config, types.MediaType(configType))
	if err := remote.WriteLayer(ref.Context(), configLayer, opts...); err != nil {
		return "", err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        descriptor(configType, config),
	}
	for _, l := range layers {
		if err := remote.WriteLayer(ref.Context(), static.NewLayer(l.Data, types.MediaType(l.MediaType)), opts...); err != nil {
			return "", err
		}
		m.Layers = append(m.Layers, descriptor(l.MediaType, l.Data))
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	if err := remote.Put(ref, rawManifest{raw: raw, mediaType: types.OCIManifestSchema1}, opts...); err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func descriptor(mediaType string, b []byte) v1.Descriptor {
	sum := sha256.Sum256(b)
	return v1.Descriptor{
		MediaType: types.MediaType(mediaType),
		Size:      int64(len(b)),
		Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
	}
}

// rawManifest is a remote.Taggable for manifests built by hand.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
