// Package image pulls wasm modules packaged as OCI images or artifacts into a
// content-addressed cache on the device, and finds them again without the
// network.
//
// Three packagings are understood:
//
//   - "image": an ordinary OCI or Docker image, or an index with a wasip1/wasm
//     (or wasi/wasm) platform, whose filesystem holds the module at the path
//     named by the config's Entrypoint[0] (else Cmd[0], else the only *.wasm
//     file);
//   - "wasm-artifact": the CNCF wasm OCI artifact (config
//     application/vnd.wasm.config.v0+json, one application/wasm layer);
//   - "wasm-to-oci": one application/vnd.wasm.content.layer.v1+wasm layer;
//   - "native": an ordinary image (or index entry) for the device's own
//     os/arch (Config.Platform), unpacked into a root filesystem for the
//     process runtime.
//
// The agent creates one Store and calls Pull for each container's image with
// the container's pull policy; the returned Artifact names the module file to
// run. GC removes what no container uses any more. A Store is safe for
// concurrent use; concurrent pulls of the same reference share one download.
//
// Cache layout under Config.Dir:
//
//	blobs/sha256/<hex>         manifests, indexes, configs and layers
//	modules/sha256/<hex>.wasm  module bytes, named by their own digest
//	rootfs/<hex>/              the unpacked filesystem of native image <hex>
//	images/sha256/<hex>.json   what was found in the image with that ID
//	refs/<hex>.json            which image ID a reference resolved to
//	tmp/                       downloads in progress
package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PullPolicy says when Pull contacts the registry, as a container's
// imagePullPolicy does.
type PullPolicy string

const (
	// PullAlways resolves the reference on the registry on every Pull and
	// downloads what is not cached.
	PullAlways PullPolicy = "Always"
	// PullIfNotPresent uses the cached artifact when there is one. The empty
	// PullPolicy means the same.
	PullIfNotPresent PullPolicy = "IfNotPresent"
	// PullNever only uses the cache.
	PullNever PullPolicy = "Never"
)

// Packagings an Artifact can have.
const (
	PackagingImage        = "image"
	PackagingWasmArtifact = "wasm-artifact"
	PackagingWasmToOCI    = "wasm-to-oci"
	PackagingNative       = "native"
)

var (
	// ErrNotPresent means the image is not in the cache: Lookup missed, or
	// Pull with PullNever found nothing.
	ErrNotPresent = errors.New("image not present in the local cache")
	// ErrNotFound means the registry does not know the image (manifest or
	// repository unknown).
	ErrNotFound = errors.New("image not found")
	// ErrTooLarge means the image does not fit the limits of this device's
	// cache: a blob larger than its budget, or layers that unpack to more
	// than Config.MaxUnpackedBytes.
	ErrTooLarge = errors.New("image too large for this device")
)

// Config configures a Store.
type Config struct {
	// Dir is the root of the cache; required. It is created if missing.
	// Only one Store at a time may use a Dir.
	Dir string
	// InsecureRegistries lists registries ("host" or "host:port") that may
	// be reached over plain HTTP; a bare host matches any port. Loopback
	// registries (localhost, 127.0.0.0/8, ::1) always may. Every other
	// registry is reached over HTTPS only. Empty allows only loopback.
	InsecureRegistries []string
	// Platform is the "os/arch" (or "os/arch/variant") of the native images
	// the device runs with its process runtime; they are unpacked into a
	// root filesystem. Empty accepts wasm images only.
	Platform string
	// MaxBytes is the cache's budget in bytes. No image whose blobs add up
	// to more is downloaded, and once the cache holds more, Collect removes
	// the images no container uses, least recently used first. Zero means
	// no budget.
	MaxBytes int64
	// MaxUnpackedBytes bounds what the layers of one image may unpack to,
	// all together: a layer that unpacks to more (a gzip bomb) fails the
	// pull. Zero means MaxBytes; with neither, there is no bound.
	MaxUnpackedBytes int64
	// ProgressTimeout gives up on a pull that receives nothing from the
	// registry for this long: no response headers, or no byte of a body.
	// Zero means one minute.
	ProgressTimeout time.Duration
	// PullTimeout bounds a whole pull, however steadily the registry
	// sends. Zero means no bound but ProgressTimeout.
	PullTimeout time.Duration
	// MaxUnusedAge has Collect remove the images no container has used
	// for this long, whatever the budget. Zero means only the budget
	// removes images.
	MaxUnusedAge time.Duration
}

// DefaultProgressTimeout is what a zero Config.ProgressTimeout means.
const DefaultProgressTimeout = time.Minute

// Validate reports whether the configuration can be used.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("image cache dir is required")
	}
	if c.Platform != "" {
		if _, err := v1.ParsePlatform(c.Platform); err != nil || !strings.Contains(c.Platform, "/") {
			return fmt.Errorf("platform %q is not os/arch[/variant]", c.Platform)
		}
	}
	for _, r := range c.InsecureRegistries {
		if r == "" || strings.Contains(r, "/") {
			return fmt.Errorf("insecure registry %q is not host or host:port", r)
		}
	}
	if c.MaxBytes < 0 || c.MaxUnpackedBytes < 0 {
		return fmt.Errorf("image cache size %d and unpacked size %d must not be negative", c.MaxBytes, c.MaxUnpackedBytes)
	}
	if c.ProgressTimeout < 0 || c.PullTimeout < 0 || c.MaxUnusedAge < 0 {
		return fmt.Errorf("image pull timeouts %s and %s and unused age %s must not be negative", c.ProgressTimeout, c.PullTimeout, c.MaxUnusedAge)
	}
	return nil
}

// Artifact is a pulled module and what its image says about running it. It
// is the caller's copy.
type Artifact struct {
	// Ref is the reference as given to Pull or Lookup.
	Ref string
	// ImageID is the digest ("sha256:<hex>") of the manifest the module came
	// from; for an index, the manifest of the wasm platform.
	ImageID string
	// Packaging is one of the Packaging constants.
	Packaging string
	// ModulePath is the absolute path of the module's bytes. The file is
	// named by its digest and never changes; GC may remove it. Empty for
	// native images.
	ModulePath string
	// RootFS is the absolute path of a native image's unpacked filesystem,
	// shared by every container of the image: do not write to it. Empty for
	// wasm packagings.
	RootFS string
	// Platform is the image config's os/arch ("wasip1/wasm", "linux/amd64"),
	// empty when the packaging has none.
	Platform string
	// Entrypoint, Cmd, Env ("KEY=VALUE") and WorkingDir come from the image
	// config for the "image" packaging and are empty otherwise.
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	// User is the image config's user ("uid", "uid:gid", "name" or
	// "name:group"); empty means root.
	User string
}

// Store is the image cache. It is safe for concurrent use.
type Store struct {
	log         *slog.Logger
	dir         string // absolute
	insecure    []string
	native      *v1.Platform  // nil: wasm only
	maxBytes    int64         // 0: no budget
	maxUnpacked int64         // 0: no bound
	progress    time.Duration // Config.ProgressTimeout, defaulted
	timeout     time.Duration // 0: none

	// gc is held shared by pulls and lookups, exclusively by GC, so that GC
	// never removes files a pull is about to record.
	gc sync.RWMutex
	// records serialises updates of images/*.json.
	records sync.Mutex

	// looked up memoizes lookup: the record each reference led to, by its
	// name, until a pull records something or GC removes something. Every
	// container start looks its image up; reading and decoding two small
	// files for it was 1.6 % of all CPU in a burst of 100 pod starts.
	lookedMu sync.Mutex
	looked   map[string]*record

	flightMu sync.Mutex
	flights  map[string]*flight // by normalized reference

	// verified holds the paths of modules and blobs whose content was
	// found to have their digest since the Store was opened. A file is
	// hashed on its first use after a restart, so that one a crash or the
	// flash damaged is pulled again rather than run.
	verifiedMu sync.Mutex
	verified   map[string]bool

	maxUnusedAge time.Duration
	usage        atomic.Int64  // bytes held: see Usage
	gcKick       chan struct{} // wakes RunGC
	diskFull     atomic.Bool   // a pull found the disk full: collect every unused image
	lastUsedMu   sync.Mutex
	lastUsed     map[string]time.Time // by image ID, as Collect last saw them
}

// flight is one pull that callers of the same reference share.
type flight struct {
	done chan struct{}
	a    *Artifact
	err  error
}

// New opens (creating if needed) the cache in cfg.Dir.
func New(cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open image cache %s: %w", cfg.Dir, err)
	}
	s := &Store{
		log:      log,
		dir:      dir,
		insecure: slices.Clone(cfg.InsecureRegistries),
		flights:  make(map[string]*flight),

		maxBytes: cfg.MaxBytes, maxUnpacked: cfg.MaxUnpackedBytes,
		progress: cfg.ProgressTimeout, timeout: cfg.PullTimeout,
		maxUnusedAge: cfg.MaxUnusedAge,
		gcKick:       make(chan struct{}, 1),
	}
	if s.maxUnpacked == 0 {
		s.maxUnpacked = s.maxBytes
	}
	if s.progress == 0 {
		s.progress = DefaultProgressTimeout
	}
	if cfg.Platform != "" {
		s.native, _ = v1.ParsePlatform(cfg.Platform)
	}
	// Downloads interrupted by a crash are of no use.
	if err := os.RemoveAll(s.path(tmpDir)); err != nil {
		return nil, fmt.Errorf("open image cache %s: %w", dir, err)
	}
	for _, d := range []string{blobsDir, modulesDir, imagesDir, refsDir, tmpDir, rootfsDir} {
		if err := os.MkdirAll(s.path(d), 0o755); err != nil {
			return nil, fmt.Errorf("open image cache %s: %w", dir, err)
		}
	}
	return s, nil
}

// Pull returns the artifact for ref (for example "127.0.0.1:5000/hello:v1" or
// "registry.example/hello@sha256:..."), downloading it as policy allows. The
// empty policy means PullIfNotPresent. Errors say what went wrong in words fit
// for a container's ErrImagePull message and wrap ErrNotFound or
// ErrNotPresent where those apply.
func (s *Store) Pull(ctx context.Context, ref string, policy PullPolicy) (*Artifact, error) {
	r, err := s.parse(ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	switch policy {
	case PullNever:
		a, err := s.lookup(r)
		if err != nil {
			return nil, fmt.Errorf("pull %s: pull policy is Never: %w", ref, err)
		}
		a.Ref = ref
		return a, nil
	case PullIfNotPresent, "":
		if a, err := s.lookup(r); err == nil {
			a.Ref = ref
			return a, nil
		} else if !errors.Is(err, ErrNotPresent) {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
	case PullAlways:
	default:
		return nil, fmt.Errorf("pull %s: unknown pull policy %q", ref, policy)
	}
	a, err := s.pullShared(ctx, r, policy != PullAlways)
	if errors.Is(err, syscall.ENOSPC) {
		// Make room for the next try: RunGC removes every unused image.
		s.diskFull.Store(true)
		s.kickGC()
		return nil, fmt.Errorf("no space left on device while pulling %s into %s; images no pod uses are being removed: %w", ref, s.dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	a.Ref = ref
	return a, nil
}

// pullShared pulls r, or waits for a pull of r already in progress. With
// ifNotPresent, a pull that finds no other in progress looks in the store
// once more first: a pull of r may have ended since the caller looked.
func (s *Store) pullShared(ctx context.Context, r name.Reference, ifNotPresent bool) (*Artifact, error) {
	key := r.Name()
	for {
		s.flightMu.Lock()
		f, ok := s.flights[key]
		if !ok {
			f = &flight{done: make(chan struct{})}
			s.flights[key] = f
			s.flightMu.Unlock()

			var present *Artifact
			if ifNotPresent {
				present, _ = s.lookup(r)
			}
			if present != nil {
				f.a = present
			} else {
				f.a, f.err = s.pull(ctx, r)
			}
			s.flightMu.Lock()
			delete(s.flights, key)
			s.flightMu.Unlock()
			close(f.done)
			return f.a.clone(), f.err
		}
		s.flightMu.Unlock()

		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// The pull we waited for was cancelled by its own caller: try again
		// with ours.
		if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
			continue
		}
		return f.a.clone(), f.err
	}
}

// Lookup returns the cached artifact for ref without using the network, or
// an error wrapping ErrNotPresent.
func (s *Store) Lookup(ref string) (*Artifact, error) {
	r, err := s.parse(ref)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", ref, err)
	}
	a, err := s.lookup(r)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", ref, err)
	}
	a.Ref = ref
	return a, nil
}

func (s *Store) lookup(r name.Reference) (*Artifact, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	s.lookedMu.Lock()
	rec := s.looked[r.Name()]
	s.lookedMu.Unlock()
	if rec == nil {
		var err error
		if rec, err = s.lookupFiles(r); err != nil {
			return nil, err
		}
		s.lookedMu.Lock()
		if s.looked == nil {
			s.looked = map[string]*record{}
		}
		s.looked[r.Name()] = rec
		s.lookedMu.Unlock()
	}
	if err := s.checkContent(rec); err != nil {
		if errors.Is(err, errCorrupt) {
			s.forgetLookups()
		}
		return nil, err
	}
	return rec.artifact(s), nil
}

// errCorrupt marks cached content that does not have its digest.
var errCorrupt = errors.New("corrupt")

// checkContent reports ErrNotPresent unless the module or root filesystem
// rec names is there, and a module has its digest. A module that does not
// is removed.
func (s *Store) checkContent(rec *record) error {
	if rec.RootFS {
		// Its files were synced before the directory got its name.
		if _, err := os.Stat(s.rootfsPath(rec.ImageID)); errors.Is(err, os.ErrNotExist) {
			return ErrNotPresent
		} else if err != nil {
			return err
		}
		return nil
	}
	if err := s.verifyFile(s.modulePath(rec.Module), rec.Module); errors.Is(err, os.ErrNotExist) {
		return ErrNotPresent
	} else if errors.Is(err, errCorrupt) {
		return fmt.Errorf("%w: cached module %s was %w and is removed", ErrNotPresent, rec.Module, err)
	} else if err != nil {
		return err
	}
	return nil
}

// verifyFile checks, once per Store, that the file at path has digest; a
// file that does not is removed and reported errCorrupt.
func (s *Store) verifyFile(path, digest string) error {
	s.verifiedMu.Lock()
	ok := s.verified[path]
	s.verifiedMu.Unlock()
	if ok {
		return nil
	}
	got, err := fileDigest(path)
	if err != nil {
		return err
	}
	if got != digest {
		s.log.Warn("cached file corrupt; removed", "path", path, "digest", digest, "actual", got)
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return errCorrupt
	}
	s.verifiedMu.Lock()
	if s.verified == nil {
		s.verified = map[string]bool{}
	}
	s.verified[path] = true
	s.verifiedMu.Unlock()
	return nil
}

// forgetVerified drops what verifyFile knows of the files under the
// cache: GC removed some.
func (s *Store) forgetVerified() {
	s.verifiedMu.Lock()
	s.verified = nil
	s.verifiedMu.Unlock()
}

// forgetLookups empties what lookup memoized: the files changed.
func (s *Store) forgetLookups() {
	s.lookedMu.Lock()
	s.looked = nil
	s.lookedMu.Unlock()
}

// lookupFiles reads the record r leads to.
func (s *Store) lookupFiles(r name.Reference) (*record, error) {
	id, err := s.readRef(r)
	if errors.Is(err, os.ErrNotExist) {
		if d, ok := r.(name.Digest); ok {
			id = d.DigestStr() // a reference to the platform manifest itself
		} else {
			return nil, ErrNotPresent
		}
	} else if err != nil {
		return nil, err
	}
	rec, err := s.readRecord(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotPresent
	}
	return rec, err
}

// parse parses ref, allowing plain HTTP for the registries that may use it.
func (s *Store) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if s.allowHTTP(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// allowHTTP reports whether the registry at hostport may be reached over
// plain HTTP.
func (s *Store) allowHTTP(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, r := range s.insecure {
		if strings.EqualFold(r, hostport) || strings.EqualFold(r, host) {
			return true
		}
	}
	return false
}

func (a *Artifact) clone() *Artifact {
	if a == nil {
		return nil
	}
	c := *a
	c.Entrypoint = slices.Clone(a.Entrypoint)
	c.Cmd = slices.Clone(a.Cmd)
	c.Env = slices.Clone(a.Env)
	return &c
}

// size formats a number of bytes for people: "512 B", "4.0 KiB", "2.0 GiB".
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// since is for log durations.
func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
