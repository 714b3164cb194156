package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of the wasm packagings.
const (
	mediaTypeWasmConfigV0   = "application/vnd.wasm.config.v0+json"
	mediaTypeWasmLayer      = "application/wasm"
	mediaTypeWasmToOCIConf  = "application/vnd.wasm.config.v1+json"
	mediaTypeWasmToOCILayer = "application/vnd.wasm.content.layer.v1+wasm"
)

// wasmPlatforms are the index platforms that hold wasm modules, preferred
// first.
var wasmPlatforms = []v1.Platform{
	{OS: "wasip1", Architecture: "wasm"},
	{OS: "wasi", Architecture: "wasm"},
}

// wasmMagic starts every WebAssembly binary module.
var wasmMagic = []byte("\x00asm")

// puller fetches one reference's manifests and blobs.
type puller struct {
	s    *Store
	ref  name.Reference
	p    *remote.Puller
	repo name.Repository
}

// pull resolves r on its registry and caches what is needed to run it,
// giving up as Config.ProgressTimeout and Config.PullTimeout say.
func (s *Store) pull(ctx context.Context, r name.Reference) (*Artifact, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()

	start := time.Now()
	pullCtx := ctx
	if s.timeout > 0 {
		var cancel context.CancelFunc
		pullCtx, cancel = context.WithTimeoutCause(ctx, s.timeout, errPullTimeout)
		defer cancel()
	}
	tr := &progressTransport{
		base:    &schemePolicy{base: remote.DefaultTransport, allowHTTP: s.allowHTTP},
		timeout: s.progress,
	}
	rec, err := s.pullWith(pullCtx, r, tr)
	switch {
	case err == nil:
	case tr.stalled.Load() && ctx.Err() == nil:
		// Whatever go-containerregistry made of the aborted request.
		return nil, fmt.Errorf("no data from the registry for %s, gave up (image pull progress timeout): %v", s.progress, err) //nolint:errorlint // what the aborted request became, not a cause to match
	case errors.Is(context.Cause(pullCtx), errPullTimeout) && ctx.Err() == nil:
		// Not wrapped: this is no cancellation that callers sharing the
		// pull should retry after (see pullShared).
		return nil, fmt.Errorf("not done within %s, gave up (image pull timeout): %v", s.timeout, err) //nolint:errorlint // not wrapped on purpose, see above
	default:
		return nil, err
	}
	// Last used now: Collect reads the time from the record just saved.
	s.lastUsedMu.Lock()
	delete(s.lastUsed, rec.ImageID)
	s.lastUsedMu.Unlock()
	s.log.Info("image pulled", "ref", r.Name(), "imageID", rec.ImageID, "packaging", rec.Packaging, "duration", since(start))
	return rec.artifact(s), nil
}

// errPullTimeout is the cause of a pull's context ending at PullTimeout.
var errPullTimeout = errors.New("image pull timeout")

func (s *Store) pullWith(ctx context.Context, r name.Reference, tr http.RoundTripper) (*record, error) {
	p, err := remote.NewPuller(
		remote.WithContext(ctx),
		remote.WithTransport(tr),
		remote.WithUserAgent("edgefabric-agent"),
	)
	if err != nil {
		return nil, err
	}
	pl := &puller{s: s, ref: r, p: p, repo: r.Context()}
	rec, err := pl.resolve(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.saveRecord(rec); err != nil {
		return nil, fmt.Errorf("save cache record: %w", err)
	}
	if err := s.saveRef(r, rec.ImageID); err != nil {
		return nil, fmt.Errorf("save cache entry: %w", err)
	}
	return rec, nil
}

// resolve fetches the manifest (choosing the wasm platform of an index) and,
// unless the image is cached already, its blobs and module.
func (pl *puller) resolve(ctx context.Context) (*record, error) {
	raw, digest, mediaType, err := pl.manifest(ctx, pl.ref)
	if err != nil {
		return nil, err
	}
	var indexes []string
	if isIndex(mediaType, raw) {
		if err := pl.s.storeBytes(digest, raw); err != nil {
			return nil, fmt.Errorf("cache index: %w", err)
		}
		indexes = append(indexes, digest)
		child, err := pickPlatform(raw, pl.s.native)
		if err != nil {
			return nil, err
		}
		if raw, digest, mediaType, err = pl.manifest(ctx, pl.repo.Digest(child.Digest.String())); err != nil {
			return nil, err
		}
		if isIndex(mediaType, raw) {
			return nil, fmt.Errorf("wasm platform %s is itself an index: nested indexes are not supported", child.Digest)
		}
	}

	if rec, err := pl.s.readRecord(digest); err == nil {
		if err := pl.s.checkContent(rec); err == nil {
			rec.Blobs = indexes // saveRecord adds the ones it has
			return rec, nil
		}
	}
	if err := pl.s.storeBytes(digest, raw); err != nil {
		return nil, fmt.Errorf("cache manifest: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", digest, err)
	}
	rec, err := pl.unpack(ctx, m, digest)
	if err != nil {
		return nil, err
	}
	rec.ImageID = digest
	rec.Blobs = append(rec.Blobs, digest)
	rec.Blobs = append(rec.Blobs, indexes...)
	return rec, nil
}

// manifest fetches and checks a manifest or index.
func (pl *puller) manifest(ctx context.Context, r name.Reference) (raw []byte, digest string, mediaType types.MediaType, err error) {
	desc, err := pl.p.Get(ctx, r)
	if err != nil {
		if isNotFound(err) {
			return nil, "", "", fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, "", "", err
	}
	sum := sha256.Sum256(desc.Manifest)
	digest = "sha256:" + hex.EncodeToString(sum[:])
	if d, ok := r.(name.Digest); ok && d.DigestStr() != digest {
		return nil, "", "", fmt.Errorf("manifest %s has digest %s", d.DigestStr(), digest)
	}
	switch desc.MediaType {
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return nil, "", "", fmt.Errorf("docker schema 1 manifests are not supported")
	}
	return desc.Manifest, digest, desc.MediaType, nil
}

// isNotFound reports whether the registry said the image does not exist.
func isNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// isIndex tells an index from a manifest by media type, or by content when
// the registry sent a generic one.
func isIndex(mediaType types.MediaType, raw []byte) bool {
	if mediaType.IsIndex() {
		return true
	}
	if mediaType.IsImage() {
		return false
	}
	var probe struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return false
	}
	return types.MediaType(probe.MediaType).IsIndex() || (probe.MediaType == "" && probe.Manifests != nil)
}

// pickPlatform returns the index entry for the wasm platform, else (if
// native is set) the one for the device's own platform.
func pickPlatform(raw []byte, native *v1.Platform) (v1.Descriptor, error) {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parse index: %w", err)
	}
	for _, want := range wasmPlatforms {
		for _, m := range idx.Manifests {
			if m.Platform != nil && m.Platform.OS == want.OS && m.Platform.Architecture == want.Architecture {
				return m, nil
			}
		}
	}
	if native != nil {
		for _, m := range idx.Manifests {
			if m.Platform != nil && m.Platform.OS == native.OS && m.Platform.Architecture == native.Architecture &&
				(native.Variant == "" || m.Platform.Variant == "" || m.Platform.Variant == native.Variant) {
				return m, nil
			}
		}
	}
	var have, platforms []string
	for _, m := range idx.Manifests {
		if m.Platform != nil {
			have = append(have, m.Platform.String())
			if p := m.Platform.OS + "/" + m.Platform.Architecture; !slices.Contains(platforms, p) {
				platforms = append(platforms, p)
			}
		} else {
			have = append(have, "unknown")
		}
	}
	want := "wasip1/wasm or wasi/wasm"
	if native != nil {
		want += " or " + native.String()
	}
	if len(have) == 0 {
		return v1.Descriptor{}, fmt.Errorf("image index has no %s platform: it is empty", want)
	}
	return v1.Descriptor{}, &PlatformError{Platforms: platforms, msg: fmt.Sprintf("image index has no %s platform, only %s", want, strings.Join(have, ", "))}
}

// PlatformError is an image with no manifest this device can run: none
// for WASM, none for its own os/arch. Platforms are the image's, as os/arch.
type PlatformError struct {
	Platforms []string
	msg       string
}

func (e *PlatformError) Error() string { return e.msg }

// unpack classifies the manifest and fetches what its packaging needs.
func (pl *puller) unpack(ctx context.Context, m *v1.Manifest, digest string) (*record, error) {
	var wasmLayers, w2oLayers []v1.Descriptor
	for _, l := range m.Layers {
		switch l.MediaType {
		case mediaTypeWasmLayer:
			wasmLayers = append(wasmLayers, l)
		case mediaTypeWasmToOCILayer:
			w2oLayers = append(w2oLayers, l)
		}
	}
	configType := string(m.Config.MediaType)
	switch {
	case len(wasmLayers) > 0 || configType == mediaTypeWasmConfigV0:
		return pl.rawModule(ctx, m, PackagingWasmArtifact, wasmLayers, mediaTypeWasmLayer)
	case len(w2oLayers) > 0 || configType == mediaTypeWasmToOCIConf:
		return pl.rawModule(ctx, m, PackagingWasmToOCI, w2oLayers, mediaTypeWasmToOCILayer)
	case configType == "" || m.Config.MediaType == types.OCIConfigJSON || m.Config.MediaType == types.DockerConfigJSON:
		return pl.imageModule(ctx, m, digest)
	default:
		return nil, fmt.Errorf("unsupported artifact: config media type %s", configType)
	}
}

// rawModule handles the packagings whose one layer is the module itself.
func (pl *puller) rawModule(ctx context.Context, m *v1.Manifest, packaging string, layers []v1.Descriptor, layerType string) (*record, error) {
	if len(layers) != 1 {
		return nil, fmt.Errorf("%s has %d layers of type %s, want 1", packaging, len(layers), layerType)
	}
	if err := pl.fetchBlob(ctx, m.Config); err != nil {
		return nil, fmt.Errorf("fetch config: %w", err)
	}
	l := layers[0]
	digest := l.Digest.String()
	if _, err := hexOf(digest); err != nil {
		return nil, err
	}
	path := pl.s.modulePath(digest)
	if err := pl.s.verifyFile(path, digest); err != nil {
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errCorrupt) {
			return nil, err
		}
		if err := pl.fetch(ctx, l, path); err != nil {
			return nil, fmt.Errorf("fetch module layer: %w", err)
		}
	}
	if err := checkMagic(path); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("%s layer %s: %w", packaging, digest, err)
	}
	return &record{
		Packaging: packaging,
		Module:    digest,
		Blobs:     []string{m.Config.Digest.String()},
	}, nil
}

// imageModule finds the module in the filesystem of an ordinary image.
func (pl *puller) imageModule(ctx context.Context, m *v1.Manifest, imageID string) (*record, error) {
	if err := pl.fetchBlob(ctx, m.Config); err != nil {
		return nil, fmt.Errorf("fetch config: %w", err)
	}
	b, err := os.ReadFile(pl.s.blobPath(m.Config.Digest.String()))
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	rec := &record{
		Packaging:  PackagingImage,
		Entrypoint: cfg.Config.Entrypoint,
		Cmd:        cfg.Config.Cmd,
		Env:        cfg.Config.Env,
		WorkingDir: cfg.Config.WorkingDir,
		User:       cfg.Config.User,
		Blobs:      []string{m.Config.Digest.String()},
	}
	platform := cfg.OS + "/" + cfg.Architecture
	if n := pl.s.native; n != nil && cfg.Architecture != "" && cfg.Architecture != "wasm" &&
		(cfg.OS != n.OS || cfg.Architecture != n.Architecture) {
		return nil, &PlatformError{Platforms: []string{platform}, msg: fmt.Sprintf("image is for %s; this device runs wasm images and %s images", platform, n)}
	}
	total := m.Config.Size
	for _, l := range m.Layers {
		total += max(l.Size, 0)
	}
	if s := pl.s; s.maxBytes > 0 && total > s.maxBytes {
		return nil, fmt.Errorf("image is %s, more than the image cache's budget of %s: %w", size(total), size(s.maxBytes), ErrTooLarge)
	}
	var layers []string
	for _, l := range m.Layers {
		if !isTarLayer(l.MediaType) {
			return nil, fmt.Errorf("layer %s has unsupported media type %s", l.Digest, l.MediaType)
		}
		if err := pl.fetchBlob(ctx, l); err != nil {
			return nil, fmt.Errorf("fetch layer: %w", err)
		}
		layers = append(layers, pl.s.blobPath(l.Digest.String()))
		rec.Blobs = append(rec.Blobs, l.Digest.String())
	}
	rec.Platform = platform
	if n := pl.s.native; n != nil && cfg.OS == n.OS && cfg.Architecture == n.Architecture {
		if err := pl.s.unpackRootFS(layers, pl.s.rootfsPath(imageID)); err != nil {
			return nil, fmt.Errorf("unpack image for %s: %w", platform, err)
		}
		rec.Packaging, rec.RootFS = PackagingNative, true
		return rec, nil
	}
	digest, err := pl.s.extractModule(layers, cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("image for %s: %w", platform, err)
	}
	rec.Module = digest
	return rec, nil
}

func isTarLayer(mt types.MediaType) bool {
	switch mt {
	case types.OCILayer, types.OCIUncompressedLayer, types.OCILayerZStd, types.DockerLayer, types.DockerUncompressedLayer,
		types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer, types.DockerForeignLayer:
		return true
	}
	return false
}

// fetchBlob caches a blob under blobs/ unless it is there already.
func (pl *puller) fetchBlob(ctx context.Context, d v1.Descriptor) error {
	if _, err := hexOf(d.Digest.String()); err != nil {
		return err
	}
	path := pl.s.blobPath(d.Digest.String())
	if err := pl.s.verifyFile(path, d.Digest.String()); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errCorrupt) {
		return err
	}
	return pl.fetch(ctx, d, path)
}

// fetch downloads a blob to path, checking its digest and size.
func (pl *puller) fetch(ctx context.Context, d v1.Descriptor, path string) error {
	if err := pl.s.checkSize(d); err != nil {
		return err
	}
	start := time.Now()
	l, err := pl.p.Layer(ctx, pl.repo.Digest(d.Digest.String()))
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := pl.s.storeVerified(path, d.Digest.String(), d.Size, rc); err != nil {
		return err
	}
	pl.s.log.Debug("blob fetched", "digest", d.Digest.String(), "size", d.Size, "duration", since(start))
	return nil
}

// checkSize refuses a blob the cache's budget cannot hold.
func (s *Store) checkSize(d v1.Descriptor) error {
	if d.Size < 0 {
		return fmt.Errorf("blob %s has a negative size %d", d.Digest, d.Size)
	}
	if s.maxBytes > 0 && d.Size > s.maxBytes {
		return fmt.Errorf("blob %s is %s, more than the image cache's budget of %s: %w", d.Digest, size(d.Size), size(s.maxBytes), ErrTooLarge)
	}
	return nil
}

// storeBytes caches a manifest or index under blobs/.
func (s *Store) storeBytes(digest string, b []byte) error {
	if _, err := hexOf(digest); err != nil {
		return err
	}
	path := s.blobPath(digest)
	if err := s.verifyFile(path, digest); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, errCorrupt) {
		return err
	}
	return s.storeVerified(path, digest, int64(len(b)), bytes.NewReader(b))
}

// checkMagic reports an error unless the file starts like a wasm module.
func checkMagic(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, len(wasmMagic))
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	if !bytes.Equal(head[:n], wasmMagic) {
		return fmt.Errorf("not a WebAssembly module: starts with %q, want %q", head[:n], wasmMagic)
	}
	return nil
}

// schemePolicy refuses plain HTTP to registries that may not use it, whatever
// go-containerregistry would fall back to.
type schemePolicy struct {
	base      http.RoundTripper
	allowHTTP func(hostport string) bool
}

func (p *schemePolicy) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !p.allowHTTP(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("plain HTTP to %s is not allowed: it is not an insecure registry", req.URL.Host)
	}
	return p.base.RoundTrip(req)
}

var _ http.RoundTripper = (*schemePolicy)(nil)

// progressTransport aborts a request that receives nothing for timeout:
// no response headers, or no byte of the body. It makes a registry that
// stalls (a lost link, a hostile or broken server) fail a pull instead of
// holding it, and the container waiting on it, for ever.
type progressTransport struct {
	base    http.RoundTripper
	timeout time.Duration
	stalled atomic.Bool // a request was aborted for want of progress
}

// errStalled ends the context of a request aborted by progressTransport.
var errStalled = errors.New("no progress from the registry")

func (p *progressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(p.timeout, func() {
		p.stalled.Store(true)
		cancel(errStalled)
	})
	resp, err := p.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		timer.Stop()
		cancel(nil)
		return nil, err
	}
	timer.Reset(p.timeout)
	resp.Body = &progressBody{ReadCloser: resp.Body, timer: timer, timeout: p.timeout, cancel: cancel}
	return resp, nil
}

// progressBody restarts its request's timer whenever bytes arrive.
type progressBody struct {
	io.ReadCloser
	timer   *time.Timer
	timeout time.Duration
	cancel  context.CancelCauseFunc
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err != nil:
		b.timer.Stop() // the body is done: no stall to come
	case n > 0:
		b.timer.Reset(b.timeout)
	}
	return n, err
}

func (b *progressBody) Close() error {
	b.timer.Stop()
	b.cancel(nil)
	return b.ReadCloser.Close()
}

var _ http.RoundTripper = (*progressTransport)(nil)
