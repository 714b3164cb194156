package image_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

func nativeStore(t *testing.T, platform string) *image.Store {
	t.Helper()
	s, err := image.New(image.Config{Dir: t.TempDir(), Platform: platform}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawTar builds a tar layer from headers (and contents for regular files).
func rawTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := e.h
		h.Size = int64(len(e.data))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type tarEntry struct {
	h    tar.Header
	data []byte
}

func reg(name, data string, mode int64) tarEntry {
	return tarEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, data: []byte(data)}
}

func pushLayers(t *testing.T, ref string, cfg *v1.ConfigFile, layers ...[]byte) {
	t.Helper()
	var raw []ocitest.RawLayer
	for _, l := range layers {
		raw = append(raw, ocitest.RawLayer{MediaType: string(types.OCIUncompressedLayer), Data: l})
	}
	cfgJSON, err := (&configJSON{cfg}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ocitest.PushRaw(t.Context(), r, string(types.OCIConfigJSON), cfgJSON, raw); err != nil {
		t.Fatal(err)
	}
}

type configJSON struct{ c *v1.ConfigFile }

func (c *configJSON) marshal() ([]byte, error) {
	img, err := mutate.ConfigFile(empty.Image, c.c)
	if err != nil {
		return nil, err
	}
	return img.RawConfigFile()
}

func TestPullNative(t *testing.T) {
	reg0 := ocitest.Serve(t)
	store := nativeStore(t, "linux/amd64")
	ref := reg0 + "/native-app:v1"
	pushLayers(t, ref, &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{Entrypoint: []string{"/bin/app"}, Env: []string{"A=1"}, WorkingDir: "/srv"}},
		rawTar(t,
			tarEntry{h: tar.Header{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755}},
			reg("bin/app", "#!app", 0o4755),
			reg("etc/old", "old", 0o644),
			reg("etc/keep", "keep", 0o600),
			reg("var/lib/gone/a", "a", 0o644),
			tarEntry{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin", Linkname: "../bin"}},
			tarEntry{h: tar.Header{Typeflag: tar.TypeFifo, Name: "dev/fifo"}},
		),
		rawTar(t,
			tarEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: "etc/.wh.old"}},
			tarEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: "var/lib/gone/.wh..wh..opq"}},
			reg("var/lib/gone/b", "b", 0o644),
			tarEntry{h: tar.Header{Typeflag: tar.TypeLink, Name: "bin/app2", Linkname: "bin/app"}},
		),
	)
	a, err := store.Pull(t.Context(), ref, image.PullIfNotPresent)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if a.Packaging != image.PackagingNative || a.RootFS == "" || a.ModulePath != "" || a.Platform != "linux/amd64" || a.WorkingDir != "/srv" {
		t.Fatalf("Pull: got %+v, want a native artifact with a root filesystem", a)
	}
	tests := []struct {
		path     string
		want     string // content; "" for absent
		wantMode os.FileMode
		link     string
	}{
		{path: "bin/app", want: "#!app", wantMode: 0o755}, // setuid dropped
		{path: "bin/app2", want: "#!app", wantMode: 0o755},
		{path: "etc/keep", want: "keep", wantMode: 0o600},
		{path: "etc/old"},
		{path: "var/lib/gone/a"},
		{path: "var/lib/gone/b", want: "b", wantMode: 0o644},
		{path: "usr/bin", link: "../bin"},
		{path: "dev/fifo"},
	}
	for _, tt := range tests {
		p := filepath.Join(a.RootFS, tt.path)
		if tt.link != "" {
			got, err := os.Readlink(p)
			if err != nil || got != tt.link {
				t.Errorf("%s: got link %q (%v), want %q", tt.path, got, err, tt.link)
			}
			continue
		}
		b, err := os.ReadFile(p)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s: exists, want it absent", tt.path)
			}
			continue
		}
		if err != nil || string(b) != tt.want {
			t.Errorf("%s: got %q (%v), want %q", tt.path, b, err, tt.want)
			continue
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != tt.wantMode || fi.Mode()&os.ModeSetuid != 0 {
			t.Errorf("%s: got mode %v, want %v", tt.path, fi.Mode(), tt.wantMode)
		}
	}

	// Lookup finds it without the network; GC removes the tree.
	if _, err := store.Lookup(ref); err != nil {
		t.Errorf("Lookup: %v", err)
	}
	if err := store.GC(nil); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, err := os.Stat(a.RootFS); !os.IsNotExist(err) {
		t.Errorf("root filesystem after GC: got %v, want it removed", err)
	}
}

// TestPullNativeHostile: layers that try to write outside the root
// filesystem fail to unpack, and nothing lands outside.
func TestPullNativeHostile(t *testing.T) {
	reg0 := ocitest.Serve(t)
	outside := t.TempDir()
	tests := []struct {
		name  string
		layer []tarEntry
	}{
		{name: "dot-dot path", layer: []tarEntry{reg("../../../../../../../.."+outside+"/pwned", "x", 0o644)}},
		{name: "file through absolute symlink", layer: []tarEntry{
			{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "escape", Linkname: outside}},
			reg("escape/pwned", "x", 0o644),
		}},
		{name: "file through relative symlink", layer: []tarEntry{
			{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "a/escape", Linkname: "../../../../../../../.." + outside}},
			reg("a/escape/pwned", "x", 0o644),
		}},
		{name: "hard link to a host file", layer: []tarEntry{
			{h: tar.Header{Typeflag: tar.TypeLink, Name: "passwd", Linkname: "../../../../../../../etc/passwd"}},
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := nativeStore(t, "linux/amd64")
			ref := reg0 + "/hostile:v" + string(rune('1'+i))
			pushLayers(t, ref, &v1.ConfigFile{OS: "linux", Architecture: "amd64"}, rawTar(t, tt.layer...))
			a, err := store.Pull(t.Context(), ref, image.PullIfNotPresent)
			if _, statErr := os.Stat(filepath.Join(outside, "pwned")); statErr == nil {
				t.Fatalf("a file was written outside the root filesystem")
			}
			if err == nil {
				// The dot-dot path is cleaned into the root: that is safe too.
				if _, err := os.Stat(filepath.Join(a.RootFS, strings.TrimPrefix(outside, "/"), "pwned")); err != nil && tt.name == "dot-dot path" {
					t.Errorf("dot-dot path: not unpacked inside the root: %v", err)
				}
				if tt.name != "dot-dot path" {
					t.Errorf("Pull: got no error, want the hostile layer refused")
				}
			}
		})
	}
}

func TestPullNativeWrongPlatform(t *testing.T) {
	reg0 := ocitest.Serve(t)
	ref := reg0 + "/arm:v1"
	pushLayers(t, ref, &v1.ConfigFile{OS: "linux", Architecture: "arm64"}, rawTar(t, reg("bin/app", "x", 0o755)))
	// An index: no matching platform.
	idxRef := reg0 + "/arm-index:v1"
	img, err := ocitest.BuildImage(&v1.ConfigFile{OS: "linux", Architecture: "arm64"}, []ocitest.File{{Path: "/bin/app", Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	r, _ := name.ParseReference(idxRef)
	if err := remote.WriteIndex(r, idx, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	store := nativeStore(t, "linux/amd64")
	if _, err := store.Pull(t.Context(), idxRef, image.PullIfNotPresent); err == nil || !strings.Contains(err.Error(), "no wasip1/wasm or wasi/wasm or linux/amd64 platform, only linux/arm64") {
		t.Errorf("Pull of an arm64 index: got %v", err)
	}
	if _, err := store.Pull(t.Context(), ref, image.PullIfNotPresent); err == nil || !strings.Contains(err.Error(), "image is for linux/arm64; this device runs wasm images and linux/amd64 images") {
		t.Errorf("Pull of an arm64 image on amd64: got %v", err)
	}
}
