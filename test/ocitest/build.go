package ocitest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// builds caches the Build* functions' results for the test binary's lifetime.
var builds sync.Map // kind and absolute source path -> *build

type build struct {
	once   sync.Once
	module []byte
	err    error
	output []byte
}

// cachedBuild runs the build that command makes, given a scratch directory
// and the file it must write there, once per key for the test binary's
// lifetime, and returns what the file holds, or the build's error and
// output.
func cachedBuild(key string, command func(scratch, file string) (*exec.Cmd, error)) (module, output []byte, err error) {
	v, _ := builds.LoadOrStore(key, &build{})
	b := v.(*build)
	b.once.Do(func() {
		scratch, err := os.MkdirTemp("", "ocitest-build-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(scratch)
		file := filepath.Join(scratch, "out")
		cmd, err := command(scratch, file)
		if err != nil {
			b.err = err
			return
		}
		if b.output, b.err = cmd.CombinedOutput(); b.err != nil {
			return
		}
		b.module, b.err = os.ReadFile(file)
	})
	return b.module, b.output, b.err
}

// BuildGo compiles the Go program in dir with GOOS=wasip1 GOARCH=wasm and
// returns the module. A relative dir is taken from the repository root (so
// "examples/hello" works from any package). Results are cached for the test
// binary's lifetime.
func BuildGo(t testing.TB, dir string) []byte {
	t.Helper()
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(RepoRoot(t), dir)
	}
	module, output, err := cachedBuild(dir, func(_, file string) (*exec.Cmd, error) {
		goTool, err := exec.LookPath("go")
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(goTool, "build", "-o", file, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		return cmd, nil
	})
	if err != nil {
		t.Fatalf("build %s for wasip1/wasm: %v\n%s", dir, err, output)
	}
	return module
}

// Wat2Wasm compiles a WebAssembly text file with wabt's wat2wasm and returns
// the module. A relative file is taken from the test's working directory. The
// test is skipped if wat2wasm is not installed.
func Wat2Wasm(t testing.TB, file string) []byte {
	t.Helper()
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skipf("wat2wasm not installed (Debian package wabt): %v", err)
	}
	out := filepath.Join(t.TempDir(), "module.wasm")
	if b, err := exec.Command(tool, file, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v\n%s", file, err, b)
	}
	module, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return module
}

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory that holds a go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
