package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// canary is a directory outside every unpacked root filesystem that the
// seeds aim at (by absolute path and by "..") and that must stay empty.
var canary = filepath.Join(os.TempDir(), "edgefabric-fuzz-canary")

// fuzzEntry is an entry of a seed layer.
type fuzzEntry struct {
	typ      byte
	name     string
	linkname string
	data     string
	size     int64 // > len(data): the header claims more than follows
}

// seedTar builds a tar layer from entries, byte for byte as given: no
// cleaning of names, and a header that claims more than follows ends the
// layer there.
func seedTar(entries ...fuzzEntry) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.linkname, Mode: 0o755, Size: int64(len(e.data)), Format: tar.FormatPAX}
		if e.size > h.Size {
			h.Size = e.size
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if e.data != "" {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				panic(err)
			}
		}
		if e.size > int64(len(e.data)) {
			_ = tw.Flush()
			return b.Bytes() // truncated
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	gz := gzip.NewWriter(&out)
	_, _ = gz.Write(b)
	_ = gz.Close()
	return out.Bytes()
}

func zstded(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// fuzzSeeds are pairs of layers (lower, upper) that try what hostile
// images try.
func fuzzSeeds() [][2][]byte {
	const R, S, L, D = tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeDir
	module := "\x00asm\x01\x00\x00\x00"
	out := canary + "/pwned"
	seeds := [][2][]fuzzEntry{
		{{{typ: R, name: "../../../../../../.." + out, data: "x"}}, nil},
		{{{typ: R, name: out, data: "x"}}, nil},
		{{{typ: S, name: "escape", linkname: canary}, {typ: R, name: "escape/pwned", data: "x"}}, nil},
		{{{typ: S, name: "a/escape", linkname: "../../../../../../../.." + canary}, {typ: R, name: "a/escape/pwned", data: "x"}}, nil},
		{{{typ: S, name: "escape", linkname: canary}}, {{typ: R, name: "escape/pwned", data: "x"}}},
		{{{typ: S, name: "dir", linkname: "/"}}, {{typ: D, name: "dir" + canary}, {typ: R, name: "dir" + out, data: "x"}}},
		{{{typ: L, name: "passwd", linkname: "../../../../../../../etc/passwd"}}, nil},
		{{{typ: S, name: "link", linkname: out}}, {{typ: L, name: "hard", linkname: "link"}, {typ: R, name: "link", data: "x"}}},
		{{{typ: R, name: "app/m.wasm", data: module}, {typ: R, name: "app/old.wasm", data: module}},
			{{typ: R, name: "app/.wh..wh..opq"}, {typ: R, name: "app/.wh.m.wasm"}, {typ: R, name: ".wh..."}, {typ: R, name: ".wh.."}}},
		{{{typ: D, name: "d/"}, {typ: R, name: "d/f", data: "x"}}, {{typ: R, name: "d", data: "file replaces dir"}, {typ: D, name: "d/"}}},
		{{{typ: S, name: "loop", linkname: "loop"}, {typ: S, name: "a", linkname: "b"}, {typ: S, name: "b", linkname: "a/m.wasm"}}, nil},
		{{{typ: R, name: "big", data: "short", size: 1 << 40}}, nil},
		{{{typ: R, name: strings.Repeat("long/", 200) + "m.wasm", data: module}}, nil},
		{{{typ: tar.TypeChar, name: "dev/null"}, {typ: tar.TypeFifo, name: "fifo"}}, {{typ: R, name: "dev/null/x", data: "x"}}},
		{{{typ: D, name: "/"}, {typ: R, name: ".", data: "dot"}, {typ: R, name: "", data: "empty"}, {typ: R, name: "a/..", data: "up"}}, nil},
	}
	var layers [][2][]byte
	for _, s := range seeds {
		lower, upper := seedTar(s[0]...), seedTar(s[1]...)
		layers = append(layers, [2][]byte{lower, upper})
	}
	// Compressed, and not tar at all.
	first := layers[2]
	layers = append(layers,
		[2][]byte{gzipped(first[0]), zstded(first[1])},
		[2][]byte{gzipped(bytes.Repeat([]byte{0}, 1<<20)), []byte("not a tar")},
		[2][]byte{{0x1f, 0x8b, 0x08}, {0x28, 0xb5, 0x2f, 0xfd}},
	)
	return layers
}

// fuzzStore opens a store whose layers may unpack to 1 MiB, and that
// does not wait for the disk.
func fuzzStore(t *testing.T) *Store {
	t.Helper()
	noSync = true
	s, err := New(Config{Dir: t.TempDir(), MaxUnpackedBytes: 1 << 20}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeLayers writes the layers as blob files and returns their paths.
func writeLayers(t *testing.T, dir string, layers ...[]byte) []string {
	t.Helper()
	var paths []string
	for i, l := range layers {
		p := filepath.Join(dir, "layer"+string(rune('0'+i)))
		if err := os.WriteFile(p, l, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// checkContained fails the test if anything was written outside the
// store's root filesystems: in the canary, or elsewhere in the cache.
func checkContained(t *testing.T, s *Store) {
	t.Helper()
	if entries, err := os.ReadDir(canary); err != nil || len(entries) > 0 {
		t.Fatalf("canary %s: %v, %v: a layer wrote outside its root filesystem", canary, entries, err)
	}
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		switch {
		case top == rootfsDir && rel != rootfsDir || top == "layers":
			return fs.SkipDir
		case d.IsDir():
			return nil // the cache's own directories
		case top == modulesDir[:strings.IndexByte(modulesDir, '/')]:
			return nil
		}
		t.Errorf("unexpected file in the cache after unpacking: %s", rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzUnpackRootFS unpacks two layers into a root filesystem: whatever
// they hold, nothing is written outside it and nothing panics.
func FuzzUnpackRootFS(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s[0], s[1])
	}
	if err := os.MkdirAll(canary, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, lower, upper []byte) {
		s := fuzzStore(t)
		dir := filepath.Join(s.dir, "layers")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(s.dir, rootfsDir, "x")
		err := s.unpackRootFS(writeLayers(t, dir, lower, upper), dst)
		if err != nil {
			if _, statErr := os.Stat(dst); statErr == nil {
				t.Errorf("unpack failed (%v) but left %s", err, dst)
			}
		}
		if entries, _ := os.ReadDir(s.path(tmpDir)); len(entries) > 0 {
			t.Errorf("tmp/ not emptied: %d entries", len(entries))
		}
		checkContained(t, s)
	})
}

// FuzzMergeLayers merges two layers as a WASM image's filesystem and
// extracts the module at target from it: nothing panics, nothing is
// written but a module named by its digest, and that module is one of the
// layers' regular files that starts like WebAssembly.
func FuzzMergeLayers(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s[0], s[1], "/app/m.wasm")
		f.Add(s[0], s[1], "")
		f.Add(s[0], s[1], "hard")
	}
	if err := os.MkdirAll(canary, 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, lower, upper []byte, target string) {
		s := fuzzStore(t)
		dir := filepath.Join(s.dir, "layers")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		layers := writeLayers(t, dir, lower, upper)
		var cfg v1.Config
		if target != "" {
			cfg.Entrypoint = []string{target}
		}
		digest, err := s.extractModule(layers, cfg)
		if err == nil {
			b, readErr := os.ReadFile(s.modulePath(digest))
			if readErr != nil {
				t.Fatalf("extracted module %s: %v", digest, readErr)
			}
			if !bytes.HasPrefix(b, wasmMagic) {
				t.Errorf("extracted module %s does not start like WebAssembly", digest)
			}
		}
		modules, _ := os.ReadDir(s.path(modulesDir))
		if n := len(modules); n > 1 || n == 1 && err != nil {
			t.Errorf("%d modules stored (extract error %v)", n, err)
		}
		checkContained(t, s)
	})
}
