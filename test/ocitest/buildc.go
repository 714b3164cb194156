package ocitest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CPackages are the Debian packages BuildC needs: clang, wasm-ld, WASI's C
// library and compiler-rt's builtins for wasm32.
const CPackages = "clang lld wasi-libc libclang-rt-14-dev-wasm32"

// wasiSysroots are where WASI's C library is looked for, in order, after
// $WASI_SYSROOT: Debian's wasi-libc (headers in /usr/include/wasm32-wasi,
// libraries in /usr/lib/wasm32-wasi) and wasi-sdk's layouts.
var wasiSysroots = []string{"/usr", "/usr/share/wasi-sysroot", "/opt/wasi-sdk/share/wasi-sysroot"}

// BuildC compiles the C program in dir (every *.c file in it) for WASI
// preview 1 with clang --target=wasm32-wasi and returns the module. A
// relative dir is taken from the repository root. Results are cached for the
// test binary's lifetime. Without the toolchain (CPackages) the test fails
// when $CI is set, which must install it, and is skipped otherwise.
func BuildC(t testing.TB, dir string) []byte {
	t.Helper()
	clang, err := exec.LookPath("clang")
	if err == nil {
		_, err = exec.LookPath("wasm-ld")
	}
	sysroot := findSysroot()
	if err == nil && sysroot == "" {
		err = fmt.Errorf("no WASI sysroot (set WASI_SYSROOT, or one of %v)", wasiSysroots)
	}
	if err != nil {
		missingC(t, err)
	}
	return buildC(t, dir, "wasm", clang, "--target=wasm32-wasi", "--sysroot="+sysroot, "-Wl,--strip-debug")
}

// BuildCNative compiles the C program in dir (every *.c file in it) for this
// machine with cc (or clang) and returns the executable, dynamically linked
// against the system's C library. A relative dir is taken from the
// repository root; results are cached for the test binary's lifetime.
func BuildCNative(t testing.TB, dir string) []byte {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		if cc, err = exec.LookPath("clang"); err != nil {
			missingC(t, fmt.Errorf("no C compiler (cc or clang): %w", err))
		}
	}
	return buildC(t, dir, "native", cc)
}

func missingC(t testing.TB, err error) {
	t.Helper()
	msg := fmt.Sprintf("C toolchain for WASM missing (Debian: apt-get install %s): %v", CPackages, err)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func findSysroot() string {
	roots := wasiSysroots
	if s := os.Getenv("WASI_SYSROOT"); s != "" {
		roots = []string{s}
	}
	for _, r := range roots {
		for _, inc := range []string{"include/wasm32-wasi/stdio.h", "include/stdio.h"} {
			if r == "/usr" && inc == "include/stdio.h" {
				continue // the host's own C library
			}
			if _, err := os.Stat(filepath.Join(r, inc)); err == nil {
				return r
			}
		}
	}
	return ""
}

func buildC(t testing.TB, dir, kind, cc string, flags ...string) []byte {
	t.Helper()
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(RepoRoot(t), dir)
	}
	module, output, err := cachedBuild("c-"+kind+":"+dir, func(_, file string) (*exec.Cmd, error) {
		srcs, err := filepath.Glob(filepath.Join(dir, "*.c"))
		if err != nil || len(srcs) == 0 {
			return nil, fmt.Errorf("no C sources in %s", dir)
		}
		args := append([]string{"-O2", "-Wall", "-Wextra", "-o", file}, flags...)
		cmd := exec.Command(cc, append(args, srcs...)...)
		cmd.Dir = dir
		return cmd, nil
	})
	if err != nil {
		t.Fatalf("build %s (%s, %s): %v\n%s\n(the WASM build needs the Debian packages %s)", dir, kind, cc, err, output, CPackages)
	}
	return module
}
