package ocitest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RustPackages are the Debian packages BuildRust needs: rustc, the Rust
// standard library for wasm32-wasi, and lld, whose wasm-ld rustc links with
// (Debian's rust-lld is a link to lld-14).
const RustPackages = "rustc libstd-rust-dev-wasm32 lld"

// rustTargets are the names of WASI preview 1 in rustc, newest first:
// wasm32-wasi was renamed wasm32-wasip1 in Rust 1.78 and removed in 1.84.
var rustTargets = []string{"wasm32-wasip1", "wasm32-wasi"}

// BuildRust compiles the Rust program src for WASI preview 1 with rustc
// alone (no cargo, so the standard library only) and returns the module. src
// is a .rs file, or a directory whose main.rs is compiled; a relative src is
// taken from the repository root. Results are cached for the test binary's
// lifetime.
//
// The compiler is $RUSTC if set, else the first of /usr/bin/rustc (Debian's)
// and the rustc on $PATH whose sysroot has the standard library for
// wasm32-wasip1 or wasm32-wasi (rustup's usually has neither: `rustup target
// add wasm32-wasip1`). Without one (RustPackages) the test fails when $CI is
// set, which must install it, and is skipped otherwise.
func BuildRust(t testing.TB, src string) []byte {
	t.Helper()
	rustc, target, err := findRustc()
	if err != nil {
		msg := fmt.Sprintf("Rust toolchain for WASM missing (Debian: apt-get install %s): %v", RustPackages, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if !filepath.IsAbs(src) {
		src = filepath.Join(RepoRoot(t), src)
	}
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		src = filepath.Join(src, "main.rs")
	}
	module, output, err := cachedBuild("rust:"+src, func(scratch, file string) (*exec.Cmd, error) {
		cmd := exec.Command(rustc, "--edition=2021", "--target="+target, "-O", "-C", "strip=symbols",
			"--crate-type=bin", "-o", file, src)
		cmd.Dir = scratch // rustc leaves no files beside -o, but keep the tree clean
		return cmd, nil
	})
	if err != nil {
		t.Fatalf("build %s (%s --target=%s): %v\n%s\n(the WASM build needs the Debian packages %s)", src, rustc, target, err, output, RustPackages)
	}
	return module
}

// findRustc returns a rustc that has a WASI preview 1 standard library, and
// that target's name.
func findRustc() (rustc, target string, err error) {
	var candidates []string
	if r := os.Getenv("RUSTC"); r != "" {
		candidates = []string{r}
	} else {
		candidates = []string{"/usr/bin/rustc"}
		if p, err := exec.LookPath("rustc"); err == nil && p != "/usr/bin/rustc" {
			candidates = append(candidates, p)
		}
	}
	var errs []error
	for _, c := range candidates {
		out, err := exec.Command(c, "--print", "sysroot").Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s --print sysroot: %w", c, err))
			continue
		}
		sysroot := strings.TrimSpace(string(out))
		for _, tg := range rustTargets {
			if _, err := os.Stat(filepath.Join(sysroot, "lib", "rustlib", tg, "lib")); err == nil {
				if !hasRustLinker(sysroot) {
					errs = append(errs, fmt.Errorf("%s has no linker for WASM (rust-lld: in its sysroot or on $PATH)", c))
					break
				}
				return c, tg, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s has no standard library for %s in %s", c, strings.Join(rustTargets, " or "), sysroot))
	}
	return "", "", errors.Join(errs...)
}

// hasRustLinker reports whether rustc with sysroot finds rust-lld, which it
// links WASM with: rustup ships it in the sysroot, Debian's lld puts it on
// $PATH.
func hasRustLinker(sysroot string) bool {
	if _, err := exec.LookPath("rust-lld"); err == nil {
		return true
	}
	found, _ := filepath.Glob(filepath.Join(sysroot, "lib", "rustlib", "*", "bin", "rust-lld"))
	return len(found) > 0
}
