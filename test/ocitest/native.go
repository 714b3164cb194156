package ocitest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BuildGoNative compiles the Go program in dir as a static binary
// (CGO_ENABLED=0) for this machine's os/arch and returns it; a relative dir
// is taken from the repository root. Results are cached for the test
// binary's lifetime.
func BuildGoNative(t testing.TB, dir string) []byte {
	t.Helper()
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(RepoRoot(t), dir)
	}
	executable, output, err := cachedBuild("native:"+dir, func(_, file string) (*exec.Cmd, error) {
		cmd := exec.Command("go", "build", "-trimpath", "-o", file, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
		return cmd, nil
	})
	if err != nil {
		t.Fatalf("build %s for %s/%s: %v\n%s", dir, runtime.GOOS, runtime.GOARCH, err, output)
	}
	return executable
}

// NativePath is where PushNative puts the executable.
const NativePath = "/app/bin/app"

// NativeImage is an OCI image for this machine's os/arch holding executable
// at NativePath (the entrypoint), an /etc/motd and an empty /tmp, working
// directory /app.
func NativeImage(executable []byte) (v1.Image, error) {
	cfg := &v1.ConfigFile{
		OS:           runtime.GOOS,
		Architecture: runtime.GOARCH,
		Config: v1.Config{
			Entrypoint: []string{NativePath},
			Env:        []string{"PATH=/app/bin:/usr/bin:/bin"},
			WorkingDir: "/app",
		},
	}
	return BuildImage(cfg,
		[]File{{Path: "/etc/motd", Data: []byte("a native edgefabric image\n")}, {Path: "/tmp/.keep"}},
		[]File{{Path: NativePath, Data: executable, Mode: 0o755}},
	)
}

// PushNative pushes NativeImage(executable) as ref and returns its digest.
func PushNative(t testing.TB, ref string, executable []byte) string {
	t.Helper()
	d, err := pushNative(t.Context(), ref, executable)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return d
}

func pushNative(ctx context.Context, ref string, executable []byte) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	img, err := NativeImage(executable)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}
