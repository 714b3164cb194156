package ocitest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindRustc(t *testing.T) {
	if _, _, err := findRustc(); err != nil {
		t.Skipf("no rustc for WASI here: %v", err)
	}
	// A rustc without the WASI standard library: rustup's without the target.
	noWASI := ""
	if p, err := exec.LookPath("rustc"); err == nil && p != "/usr/bin/rustc" {
		out, _ := exec.Command(p, "--print", "sysroot").Output()
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(out)), "lib/rustlib/wasm32-wasi/lib")); err != nil {
			noWASI = p
		}
	}
	for _, tt := range []struct {
		name, rustc string
		wantErr     string // "": found
	}{
		{"default", "", ""},
		{"missing", filepath.Join(t.TempDir(), "rustc"), "--print sysroot"},
		{"no WASI std", noWASI, "has no standard library for wasm32-wasip1 or wasm32-wasi"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "no WASI std" && tt.rustc == "" {
				t.Skip("no rustc without the WASI standard library on $PATH")
			}
			t.Setenv("RUSTC", tt.rustc)
			rustc, target, err := findRustc()
			switch {
			case tt.wantErr == "" && (err != nil || rustc == "" || target == ""):
				t.Errorf("got %q, %q, %v; want a rustc and a target", rustc, target, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %q, %q, %v; want an error with %q", rustc, target, err, tt.wantErr)
			}
		})
	}
}

func TestBuildRust(t *testing.T) {
	module := BuildRust(t, "examples/rusthello")
	if !bytes.HasPrefix(module, []byte("\x00asm\x01\x00\x00\x00")) {
		t.Fatalf("not a WebAssembly module: % x", module[:min(8, len(module))])
	}
	if file := BuildRust(t, "examples/rusthello/main.rs"); !bytes.HasPrefix(file, []byte("\x00asm")) {
		t.Errorf("examples/rusthello/main.rs: not a WebAssembly module")
	}
}
