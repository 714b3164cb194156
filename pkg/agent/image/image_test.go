package image_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/pkg/agent/runtime/wasm"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
	"github.com/edgefabric/edgefabric/test/ocitest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newStore(t *testing.T, dir string) *image.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := image.New(image.Config{Dir: dir}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tiny(t *testing.T) []byte {
	t.Helper()
	return ocitest.Wat2Wasm(t, filepath.Join(ocitest.RepoRoot(t), "examples", "tiny", "tiny.wat"))
}

// run runs a pulled module and returns its stdout.
func run(t *testing.T, rt *wasm.Runtime, a *image.Artifact, args ...string) string {
	t.Helper()
	var stdout bytes.Buffer
	inst, err := rt.Start(t.Context(), wasm.Spec{ModulePath: a.ModulePath, Args: args, Env: a.Env, Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Done():
	case <-time.After(30 * time.Second):
		inst.Stop(0)
		t.Fatal("module did not exit")
	}
	if res := inst.Result(); res.Reason != reasons.Completed {
		t.Fatalf("module ended with %+v", res)
	}
	return stdout.String()
}

func newRuntime(t *testing.T) *wasm.Runtime {
	t.Helper()
	rt, err := wasm.New(t.Context(), wasm.Config{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func TestPullPackagings(t *testing.T) {
	reg := ocitest.Serve(t)
	store := newStore(t, "")
	rt := newRuntime(t)
	module := tiny(t)
	tests := []struct {
		packaging ocitest.Packaging
		want      image.Artifact
	}{
		{ocitest.Image, image.Artifact{Packaging: "image", Platform: "wasip1/wasm", Entrypoint: []string{"/app/module.wasm"}, WorkingDir: "/app"}},
		{ocitest.Index, image.Artifact{Packaging: "image", Platform: "wasip1/wasm", Entrypoint: []string{"/app/module.wasm"}, WorkingDir: "/app"}},
		{ocitest.WasmArtifact, image.Artifact{Packaging: "wasm-artifact"}},
		{ocitest.WasmToOCI, image.Artifact{Packaging: "wasm-to-oci"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.packaging), func(t *testing.T) {
			ref := fmt.Sprintf("%s/tiny-%s:v1", reg, tt.packaging)
			digest := ocitest.Push(t, ref, module, tt.packaging)
			got, err := store.Pull(t.Context(), ref, image.PullIfNotPresent)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Ref, want.ImageID = ref, digest
			if diff := cmp.Diff(&want, got, cmpopts.IgnoreFields(image.Artifact{}, "ModulePath")); diff != "" {
				t.Errorf("Pull(%s) mismatch (-want +got):\n%s", ref, diff)
			}
			if !filepath.IsAbs(got.ModulePath) {
				t.Errorf("ModulePath %q is not absolute", got.ModulePath)
			}
			if b, err := os.ReadFile(got.ModulePath); err != nil || !bytes.Equal(b, module) {
				t.Errorf("module file differs from the pushed module (err %v)", err)
			}
			if out := run(t, rt, got); out != "tiny\n" {
				t.Errorf("module wrote %q, want %q", out, "tiny\n")
			}
		})
	}
}

func TestPullGoExampleFromIndex(t *testing.T) {
	reg := ocitest.Serve(t)
	ref := reg + "/hello:v1"
	ocitest.Push(t, ref, ocitest.BuildGo(t, "examples/hello"), ocitest.Index)
	a, err := newStore(t, "").Pull(t.Context(), ref, "")
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	rt := newRuntime(t)
	inst, err := rt.Start(t.Context(), wasm.Spec{
		ModulePath: a.ModulePath,
		Args:       append(a.Entrypoint, "x"),
		Env:        []string{"COUNT=1", "INTERVAL=1ms", "HOSTNAME=pulled"},
		Stdout:     &stdout,
	})
	if err != nil {
		t.Fatal(err)
	}
	<-inst.Done()
	if res := inst.Result(); res.Reason != reasons.Completed {
		t.Fatalf("result %+v", res)
	}
	if want := "hello from pulled\nargs: [\"x\"]\n"; !strings.HasPrefix(stdout.String(), want) {
		t.Errorf("stdout %q, want it to start with %q", stdout.String(), want)
	}
}

func TestCachedPullsUseNoNetwork(t *testing.T) {
	reg := ocitest.NewRegistry(t)
	ref := reg.Addr + "/tiny:v1"
	digest := ocitest.Push(t, ref, tiny(t), ocitest.Index)
	dir := t.TempDir()
	if _, err := newStore(t, dir).Pull(t.Context(), ref, image.PullIfNotPresent); err != nil {
		t.Fatal(err)
	}
	before := reg.Requests()
	// A new Store on the same dir, as after an agent restart.
	store := newStore(t, dir)
	for _, policy := range []image.PullPolicy{image.PullIfNotPresent, "", image.PullNever} {
		a, err := store.Pull(t.Context(), ref, policy)
		if err != nil {
			t.Fatalf("Pull with %q: %v", policy, err)
		}
		if a.ImageID != digest {
			t.Errorf("Pull with %q: ImageID %s, want %s", policy, a.ImageID, digest)
		}
	}
	if a, err := store.Lookup(ref); err != nil || a.ImageID != digest {
		t.Errorf("Lookup = %+v, %v; want image %s", a, err, digest)
	}
	if n := reg.Requests() - before; n != 0 {
		t.Errorf("cached pulls made %d requests, want none", n)
	}

	reg.Close()
	if _, err := store.Pull(t.Context(), ref, image.PullIfNotPresent); err != nil {
		t.Errorf("Pull IfNotPresent with the registry gone: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := store.Pull(ctx, ref, image.PullAlways); err == nil {
		t.Error("Pull Always with the registry gone succeeded")
	}
}

func TestPullAlwaysFollowsTag(t *testing.T) {
	reg := ocitest.Serve(t)
	ref := reg + "/moving:latest"
	store := newStore(t, "")
	first := ocitest.Push(t, ref, tiny(t), ocitest.WasmArtifact)
	if a, err := store.Pull(t.Context(), ref, image.PullAlways); err != nil || a.ImageID != first {
		t.Fatalf("first Pull = %+v, %v; want %s", a, err, first)
	}
	second := ocitest.Push(t, ref, append(tiny(t), 0, 0), ocitest.WasmArtifact) // a custom section would do too
	tests := []struct {
		policy image.PullPolicy
		want   string
	}{
		{image.PullIfNotPresent, first},
		{image.PullNever, first},
		{image.PullAlways, second},
		{image.PullIfNotPresent, second},
	}
	for _, tt := range tests {
		a, err := store.Pull(t.Context(), ref, tt.policy)
		if err != nil {
			t.Fatalf("Pull %s: %v", tt.policy, err)
		}
		if a.ImageID != tt.want {
			t.Errorf("Pull %s: ImageID %s, want %s", tt.policy, a.ImageID, tt.want)
		}
	}
}

func TestNotPresent(t *testing.T) {
	store := newStore(t, "")
	ref := "127.0.0.1:1/nothing:v1"
	if _, err := store.Pull(t.Context(), ref, image.PullNever); !errors.Is(err, image.ErrNotPresent) {
		t.Errorf("Pull Never: got %v, want ErrNotPresent", err)
	} else if !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "Never") {
		t.Errorf("Pull Never error %q should name the image and the policy", err)
	}
	if _, err := store.Lookup(ref); !errors.Is(err, image.ErrNotPresent) {
		t.Errorf("Lookup: got %v, want ErrNotPresent", err)
	}
	if _, err := store.Pull(t.Context(), ref, "Sometimes"); err == nil || !strings.Contains(err.Error(), "Sometimes") {
		t.Errorf("Pull with a bad policy: got %v", err)
	}
}

// pushIndex pushes an index of small images for the given platforms.
func pushIndex(t *testing.T, ref string, platforms ...v1.Platform) {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, err := ocitest.BuildImage(&v1.ConfigFile{OS: p.OS, Architecture: p.Architecture},
			[]ocitest.File{{Path: "/bin/app", Data: []byte("native")}})
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
}

// pushImage pushes an image with the given config and layers.
func pushImage(t *testing.T, ref string, cfg v1.Config, layers ...[]ocitest.File) {
	t.Helper()
	img, err := ocitest.BuildImage(&v1.ConfigFile{OS: "wasip1", Architecture: "wasm", Config: cfg}, layers...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
}

func TestPullErrors(t *testing.T) {
	reg := ocitest.Serve(t)
	store := newStore(t, "")
	module := tiny(t)
	ocitest.Push(t, reg+"/exists:v1", module, ocitest.Image)
	ocitest.Push(t, reg+"/text:v1", []byte("#!/bin/sh\necho hello\n"), ocitest.Image)
	ocitest.Push(t, reg+"/text-artifact:v1", []byte("hello"), ocitest.WasmArtifact)
	pushIndex(t, reg+"/native:v1", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	pushImage(t, reg+"/missing:v1", v1.Config{Entrypoint: []string{"/app/main.wasm"}},
		[]ocitest.File{{Path: "/app/other.wasm", Data: module}})
	pushImage(t, reg+"/whited-out:v1", v1.Config{Entrypoint: []string{"/app/main.wasm"}},
		[]ocitest.File{{Path: "/app/main.wasm", Data: module}},
		[]ocitest.File{{Path: "/app/main.wasm", Whiteout: true}})
	pushImage(t, reg+"/none:v1", v1.Config{}, []ocitest.File{{Path: "/etc/motd", Data: []byte("hi")}})
	pushImage(t, reg+"/several:v1", v1.Config{}, []ocitest.File{{Path: "/a.wasm", Data: module}, {Path: "/b.wasm", Data: module}})

	tests := []struct {
		name    string
		ref     string
		is      error
		wantErr []string
	}{
		{"unknown repository", reg + "/nope:v1", image.ErrNotFound, []string{"not found"}},
		{"unknown tag", reg + "/exists:v2", image.ErrNotFound, []string{"not found"}},
		{"index without wasm", reg + "/native:v1", nil, []string{"no wasip1/wasm", "linux/amd64, linux/arm64/v8"}},
		{"not wasm in image", reg + "/text:v1", nil, []string{"/app/module.wasm", "not a WebAssembly module", `"#!/b"`}},
		{"not wasm in artifact", reg + "/text-artifact:v1", nil, []string{"not a WebAssembly module"}},
		{"module missing", reg + "/missing:v1", nil, []string{"/app/main.wasm", "not found in the image filesystem"}},
		{"module removed by whiteout", reg + "/whited-out:v1", nil, []string{"/app/main.wasm", "not found in the image filesystem"}},
		{"no entrypoint, no wasm", reg + "/none:v1", nil, []string{"no .wasm file"}},
		{"no entrypoint, several wasm", reg + "/several:v1", nil, []string{"/a.wasm, /b.wasm"}},
		{"bad reference", "UPPER/Case::", nil, []string{"UPPER/Case::"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.Pull(t.Context(), tt.ref, image.PullIfNotPresent)
			if err == nil {
				t.Fatal("Pull succeeded")
			}
			t.Logf("error: %v", err)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			for _, want := range append(tt.wantErr, tt.ref) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if _, err := store.Lookup(tt.ref); !errors.Is(err, image.ErrNotPresent) && tt.name != "bad reference" {
				t.Errorf("Lookup after a failed pull: %v, want ErrNotPresent", err)
			}
		})
	}
}

func TestImageFilesystem(t *testing.T) {
	reg := ocitest.Serve(t)
	store := newStore(t, "")
	module := tiny(t)
	other := append(bytes.Clone(module), 0) // another valid module
	tests := []struct {
		name   string
		cfg    v1.Config
		layers [][]ocitest.File
		want   []byte
	}{
		{
			name:   "upper layer replaces the file",
			cfg:    v1.Config{Entrypoint: []string{"/app/m.wasm"}},
			layers: [][]ocitest.File{{{Path: "/app/m.wasm", Data: other}}, {{Path: "/app/m.wasm", Data: module}}},
			want:   module,
		},
		{
			name:   "cmd when there is no entrypoint",
			cfg:    v1.Config{Cmd: []string{"/bin/m.wasm", "arg"}},
			layers: [][]ocitest.File{{{Path: "/bin/m.wasm", Data: module}, {Path: "/bin/n.wasm", Data: other}}},
			want:   module,
		},
		{
			name:   "relative entrypoint from the working dir",
			cfg:    v1.Config{Entrypoint: []string{"m.wasm"}, WorkingDir: "/srv"},
			layers: [][]ocitest.File{{{Path: "/srv/m.wasm", Data: module}}},
			want:   module,
		},
		{
			name: "only wasm file after a whiteout",
			layers: [][]ocitest.File{
				{{Path: "/old.wasm", Data: other}, {Path: "/app/new.wasm", Data: module}},
				{{Path: "/old.wasm", Whiteout: true}},
			},
			want: module,
		},
		{
			name: "opaque directory hides lower files",
			layers: [][]ocitest.File{
				{{Path: "/app/old.wasm", Data: other}},
				{{Path: "/app/.wh..wh..opq"}, {Path: "/app/new.wasm", Data: module}},
			},
			want: module,
		},
		{
			name: "whiteout of a directory",
			layers: [][]ocitest.File{
				{{Path: "/old/x.wasm", Data: other}, {Path: "/new/x.wasm", Data: module}},
				{{Path: "/old", Whiteout: true}},
			},
			want: module,
		},
		{
			name: "symbolic links",
			cfg:  v1.Config{Entrypoint: []string{"/usr/bin/m"}},
			layers: [][]ocitest.File{
				{{Path: "/opt/app/v1/m.wasm", Data: module}, {Path: "/opt/app/current", Linkname: "v1"}},
				{{Path: "/usr/bin/m", Linkname: "/opt/app/current/m.wasm"}},
			},
			want: module,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := fmt.Sprintf("%s/fs-%d:v1", reg, i)
			pushImage(t, ref, tt.cfg, tt.layers...)
			a, err := store.Pull(t.Context(), ref, image.PullIfNotPresent)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(a.ModulePath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("pulled module of %d bytes, want the %d-byte one", len(got), len(tt.want))
			}
			if diff := cmp.Diff(tt.cfg.Entrypoint, a.Entrypoint); diff != "" {
				t.Errorf("Entrypoint mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.cfg.Cmd, a.Cmd); diff != "" {
				t.Errorf("Cmd mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestImageConfigEnv(t *testing.T) {
	reg := ocitest.Serve(t)
	ref := reg + "/env:v1"
	pushImage(t, ref, v1.Config{Entrypoint: []string{"/m.wasm"}, Env: []string{"A=1", "B=two"}, WorkingDir: "/w"},
		[]ocitest.File{{Path: "/m.wasm", Data: tiny(t)}})
	a, err := newStore(t, "").Pull(t.Context(), ref, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A=1", "B=two"}, a.Env); diff != "" {
		t.Errorf("Env mismatch (-want +got):\n%s", diff)
	}
	if a.WorkingDir != "/w" {
		t.Errorf("WorkingDir = %q, want /w", a.WorkingDir)
	}
}

func TestPullByDigest(t *testing.T) {
	reg := ocitest.NewRegistry(t)
	repo := reg.Addr + "/bydigest"
	platformDigest := ocitest.Push(t, repo+":v1", tiny(t), ocitest.Index)
	r, err := name.ParseReference(repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	store := newStore(t, "")
	for _, ref := range []string{
		repo + "@" + desc.Digest.String(),         // the index
		repo + "@" + platformDigest,               // its wasm manifest
		repo + ":v1@" + desc.Digest.String(),      // tag and digest
		repo + ":ignored@" + desc.Digest.String(), // the digest wins
	} {
		a, err := store.Pull(t.Context(), ref, image.PullIfNotPresent)
		if err != nil {
			t.Fatalf("Pull %s: %v", ref, err)
		}
		if a.ImageID != platformDigest || a.Ref != ref {
			t.Errorf("Pull %s = %+v, want ImageID %s", ref, a, platformDigest)
		}
	}
	reg.Close()
	for _, ref := range []string{repo + "@" + desc.Digest.String(), repo + "@" + platformDigest} {
		if a, err := store.Lookup(ref); err != nil || a.ImageID != platformDigest {
			t.Errorf("Lookup %s offline = %+v, %v", ref, a, err)
		}
	}
	wrong := repo + "@sha256:" + strings.Repeat("0", 64)
	if _, err := store.Lookup(wrong); !errors.Is(err, image.ErrNotPresent) {
		t.Errorf("Lookup %s: %v, want ErrNotPresent", wrong, err)
	}
}

func TestConcurrentPullsShareOneDownload(t *testing.T) {
	reg := ocitest.NewRegistry(t)
	ref := reg.Addr + "/shared:v1"
	digest := ocitest.Push(t, ref, tiny(t), ocitest.Image)
	before := reg.ManifestGets()
	store := newStore(t, "")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			a, err := store.Pull(t.Context(), ref, image.PullIfNotPresent)
			if err != nil {
				t.Error(err)
				return
			}
			if a.ImageID != digest {
				t.Errorf("ImageID %s, want %s", a.ImageID, digest)
			}
		})
	}
	wg.Wait()
	if n := reg.ManifestGets() - before; n != 1 {
		t.Errorf("8 concurrent pulls fetched the manifest %d times, want 1", n)
	}
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestLookupAfterTagMoved looks a tag up, pushes another image under it and
// pulls it again: Lookup then says the new image.
func TestLookupAfterTagMoved(t *testing.T) {
	reg := ocitest.Serve(t)
	store := newStore(t, t.TempDir())
	ref := reg + "/moving:v1"
	first := ocitest.Push(t, ref, tiny(t), ocitest.Image)
	if _, err := store.Pull(t.Context(), ref, image.PullAlways); err != nil {
		t.Fatal(err)
	}
	if a, err := store.Lookup(ref); err != nil || a.ImageID != first {
		t.Fatalf("Lookup = %+v, %v; want image %s", a, err, first)
	}
	second := ocitest.Push(t, ref, append(tiny(t), 0), ocitest.Image)
	if _, err := store.Pull(t.Context(), ref, image.PullAlways); err != nil {
		t.Fatal(err)
	}
	if a, err := store.Lookup(ref); err != nil || a.ImageID != second {
		t.Errorf("Lookup after the tag moved = %+v, %v; want image %s", a, err, second)
	}
}

func TestGC(t *testing.T) {
	reg := ocitest.Serve(t)
	dir := t.TempDir()
	store := newStore(t, dir)
	module := tiny(t)
	refA, refB := reg+"/a:v1", reg+"/b:v1"
	idA := ocitest.Push(t, refA, module, ocitest.Index)
	ocitest.Push(t, refB, append(bytes.Clone(module), 0), ocitest.Image)
	a, err := store.Pull(t.Context(), refA, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.Pull(t.Context(), refB, "")
	if err != nil {
		t.Fatal(err)
	}
	blobsBefore := len(dirEntries(t, filepath.Join(dir, "blobs", "sha256")))
	for _, ref := range []string{refA, refB} { // what GC removes must not be remembered
		if _, err := store.Lookup(ref); err != nil {
			t.Fatalf("Lookup %s before GC: %v", ref, err)
		}
	}

	if err := store.GC(map[string]bool{idA: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Lookup(refA); err != nil {
		t.Errorf("Lookup of kept image: %v", err)
	}
	if _, err := store.Lookup(refB); !errors.Is(err, image.ErrNotPresent) {
		t.Errorf("Lookup of collected image: %v, want ErrNotPresent", err)
	}
	if _, err := os.Stat(a.ModulePath); err != nil {
		t.Errorf("kept module: %v", err)
	}
	if _, err := os.Stat(b.ModulePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("collected module still there: %v", err)
	}
	// A keeps index, manifest, config and two layers; B had a manifest, a
	// config and a module layer of its own, and shares the first layer.
	if got := len(dirEntries(t, filepath.Join(dir, "blobs", "sha256"))); got != 5 || blobsBefore != 8 {
		t.Errorf("blobs: %d before GC, %d after; want 8 and 5", blobsBefore, got)
	}
	// The kept image works offline from what is left.
	if _, err := newStore(t, dir).Pull(t.Context(), refA, image.PullNever); err != nil {
		t.Errorf("Pull Never of kept image: %v", err)
	}

	if err := store.GC(nil); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"blobs/sha256", "modules/sha256", "images/sha256", "refs"} {
		if got := dirEntries(t, filepath.Join(dir, sub)); len(got) != 0 {
			t.Errorf("%s after GC of everything: %v", sub, got)
		}
	}
	// And it can be pulled again.
	if _, err := store.Pull(t.Context(), refB, ""); err != nil {
		t.Errorf("Pull after GC: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     image.Config
		wantErr string
	}{
		{"ok", image.Config{Dir: "/var/lib/edgefabric/images", InsecureRegistries: []string{"reg.lan:5000", "10.0.0.1"}}, ""},
		{"no dir", image.Config{}, "dir is required"},
		{"url instead of host", image.Config{Dir: "/x", InsecureRegistries: []string{"http://reg.lan"}}, "not host or host:port"},
		{"empty host", image.Config{Dir: "/x", InsecureRegistries: []string{""}}, "not host or host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
