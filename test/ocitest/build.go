package ocitest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// builds caches BuildGo's results for the test binary's lifetime.
var builds sync.Map // absolute dir -> *build

type build struct {
	once   sync.Once
	module []byte
	err    error
	output []byte
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
	v, _ := builds.LoadOrStore(dir, &build{})
	b := v.(*build)
	b.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			b.err = err
			return
		}
		out, err := os.MkdirTemp("", "ocitest-build-")
		if err != nil {
			b.err = err
			return
		}
		defer os.RemoveAll(out)
		file := filepath.Join(out, "module.wasm")
		cmd := exec.Command(goTool, "build", "-o", file, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if b.output, b.err = cmd.CombinedOutput(); b.err != nil {
			return
		}
		b.module, b.err = os.ReadFile(file)
	})
	if b.err != nil {
		t.Fatalf("build %s for wasip1/wasm: %v\n%s", dir, b.err, b.output)
	}
	return b.module
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
