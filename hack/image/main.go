// Command image builds the provider's multi-arch OCI image without a Docker
// daemon, the way ko does: it cross-compiles cmd/provider statically for each
// platform, puts the binary on a minimal static base (a non-root user, CA
// certificates if the build machine has them, nothing else), and writes an OCI
// image index as an OCI layout directory and as a tarball. With -push it also
// pushes the index to a registry.
//
//	go run ./hack/image -out _output/image [-platforms linux/amd64,linux/arm64] [-push REF]
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Config says what to build.
type Config struct {
	Root      string   // repository root
	Out       string   // output directory: <Out>/oci (layout) and <Out>/provider.tar
	Platforms []string // os/arch
	Version   string
	Push      string // reference to push the index to; "" = no push
	Insecure  bool   // push over plain HTTP
}

// nonRoot is the user the provider runs as (distroless's "nonroot").
const nonRoot = 65532

func main() {
	var cfg Config
	var platforms string
	flag.StringVar(&cfg.Root, "root", ".", "repository root")
	flag.StringVar(&cfg.Out, "out", "_output/image", "output directory")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	flag.StringVar(&cfg.Version, "version", "dev", "version stamped into the binary and the image labels")
	flag.StringVar(&cfg.Push, "push", "", "also push the image index to this reference")
	flag.BoolVar(&cfg.Insecure, "insecure", false, "push over plain HTTP")
	flag.Parse()
	cfg.Platforms = strings.Split(platforms, ",")
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), cfg, log); err != nil {
		log.Error("image build failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	idx, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	ociDir := filepath.Join(cfg.Out, "oci")
	if err := os.RemoveAll(ociDir); err != nil {
		return err
	}
	lp, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": cfg.Version,
	})); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	tarPath := filepath.Join(cfg.Out, "provider.tar")
	if err := writeTarball(tarPath, idx, cfg); err != nil {
		return err
	}
	log.Info("image built", "index", digest.String(), "layout", ociDir, "tarball", tarPath)
	if cfg.Push != "" {
		var opts []name.Option
		if cfg.Insecure {
			opts = append(opts, name.Insecure)
		}
		ref, err := name.ParseReference(cfg.Push, opts...)
		if err != nil {
			return fmt.Errorf("push reference: %w", err)
		}
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		log.Info("image pushed", "ref", ref.String(), "digest", digest.String())
	}
	fmt.Println(digest.String())
	return nil
}

// build returns the image index of cfg.Platforms.
func build(ctx context.Context, cfg Config, log *slog.Logger) (v1.ImageIndex, error) {
	base, err := baseLayer()
	if err != nil {
		return nil, err
	}
	var adds []mutate.IndexAddendum
	for _, p := range cfg.Platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, fmt.Errorf("platform %q: %w", p, err)
		}
		bin, err := compile(ctx, cfg, plat)
		if err != nil {
			return nil, err
		}
		log.Info("provider compiled", "platform", p, "bytes", len(bin))
		app, err := layerOf([]file{{path: "ko-app/provider", mode: 0o755, data: bin}})
		if err != nil {
			return nil, err
		}
		img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), base, app)
		if err != nil {
			return nil, err
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
		cf.Created = v1.Time{Time: time.Unix(0, 0)}
		cf.Config.Entrypoint = []string{"/ko-app/provider"}
		cf.Config.User = fmt.Sprint(nonRoot)
		cf.Config.WorkingDir = "/"
		cf.Config.Env = []string{"PATH=/ko-app", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
		cf.Config.Labels = map[string]string{
			"org.opencontainers.image.title":   "edgefabric-provider",
			"org.opencontainers.image.version": cfg.Version,
			"org.opencontainers.image.source":  "https://github.com/edgefabric/edgefabric",
		}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// compile builds a static provider binary for plat.
func compile(ctx context.Context, cfg Config, plat *v1.Platform) ([]byte, error) {
	dir, err := os.MkdirTemp("", "edgefabric-image")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "provider")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/edgefabric/edgefabric/pkg/version.Version="+cfg.Version,
		"-o", out, "./cmd/provider")
	cmd.Dir = cfg.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture)
	if plat.Architecture == "arm" && strings.HasPrefix(plat.Variant, "v") {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(plat.Variant, "v"))
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build for %s/%s: %w\n%s", plat.OS, plat.Architecture, err, b)
	}
	return os.ReadFile(out)
}

type file struct {
	path string
	mode int64
	data []byte
	dir  bool
}

// baseLayer is the static base: the directories a Go program expects, a
// passwd and group naming the non-root user, and the build machine's CA
// bundle when it has one (the provider talks TLS to the API server).
func baseLayer() (v1.Layer, error) {
	files := []file{
		{path: "etc", dir: true, mode: 0o755},
		{path: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonRoot, nonRoot))},
		{path: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonRoot))},
		{path: "home/nonroot", dir: true, mode: 0o700},
		{path: "tmp", dir: true, mode: 0o1777},
		{path: "ko-app", dir: true, mode: 0o755},
	}
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		files = append(files, file{path: "etc/ssl/certs", dir: true, mode: 0o755},
			file{path: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca})
	}
	return layerOf(files)
}

// layerOf makes a reproducible gzip layer of files (fixed times, root-owned
// except the non-root home).
func layerOf(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		if f.dir {
			h.Typeflag, h.Size, h.Name = tar.TypeDir, 0, f.path+"/"
		}
		if strings.HasPrefix(f.path, "home/nonroot") {
			h.Uid, h.Gid = nonRoot, nonRoot
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// writeTarball writes the image of the build machine's platform (or the
// first) as a docker-loadable tarball, tagged with the version.
func writeTarball(path string, idx v1.ImageIndex, cfg Config) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	refs := map[name.Reference]v1.Image{}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		tag, err := name.NewTag("edgefabric/provider:" + cfg.Version + "-" + d.Platform.Architecture)
		if err != nil {
			return err
		}
		refs[tag] = img
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tarball.MultiRefWrite(refs, f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
