package main

import (
	"archive/tar"
	"context"
	"debug/elf"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/edgefabric/edgefabric/test/ocitest"
)

// TestBuildsMultiArchImage builds the real image for two platforms, pushes it
// to a registry, and checks what a container runtime would run from it.
func TestBuildsMultiArchImage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the provider twice")
	}
	reg := ocitest.Serve(t)
	out := t.TempDir()
	cfg := Config{
		Root: ocitest.RepoRoot(t), Out: out, Platforms: []string{"linux/amd64", "linux/arm64"},
		Version: "v0.0.0-test", Push: reg + "/edgefabric/provider:test", Insecure: true,
	}
	if err := run(context.Background(), cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	ref, err := name.ParseReference(cfg.Push, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull pushed index: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want 2", len(im.Manifests))
	}
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != "linux" || cf.Architecture != d.Platform.Architecture {
			t.Errorf("config platform %s/%s, index says %s", cf.OS, cf.Architecture, d.Platform)
		}
		if cf.Config.User != "65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/ko-app/provider" {
			t.Errorf("%s: user %q entrypoint %v", d.Platform, cf.Config.User, cf.Config.Entrypoint)
		}
		bin := fileIn(t, img, "ko-app/provider")
		f, err := elf.NewFile(bin)
		if err != nil {
			t.Fatalf("%s: provider is not an ELF binary: %v", d.Platform, err)
		}
		if f.Machine != machines[d.Platform.Architecture] {
			t.Errorf("%s: binary is for %v", d.Platform, f.Machine)
		}
		if f.Section(".interp") != nil {
			t.Errorf("%s: binary is dynamically linked; the base has no libc", d.Platform)
		}
	}

	// The layout and the tarball hold the same images.
	lp, err := layout.FromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	lidx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	lim, err := lidx.IndexManifest()
	if err != nil || len(lim.Manifests) != 1 {
		t.Fatalf("layout index: %v, %v", lim, err)
	}
	want, _ := idx.Digest()
	if lim.Manifests[0].Digest != want {
		t.Errorf("layout holds %s, pushed %s", lim.Manifests[0].Digest, want)
	}
	tag, _ := name.NewTag("edgefabric/provider:v0.0.0-test-amd64")
	if _, err := tarball.ImageFromPath(filepath.Join(out, "provider.tar"), &tag); err != nil {
		t.Errorf("tarball: %v", err)
	}
}

// fileIn extracts path from img's flattened filesystem into a temp file.
func fileIn(t *testing.T, img v1.Image, path string) *os.File {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in image: %v", path, err)
		}
		if h.Name != path {
			continue
		}
		f, err := os.CreateTemp(t.TempDir(), "bin")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		return f
	}
}
