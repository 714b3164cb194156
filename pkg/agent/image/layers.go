package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
	maxLinkHops    = 16
	// maxZstdWindow bounds the memory a zstd layer may need to decode: 8
	// MiB is what zstd uses up to its highest ordinary level; --long asks
	// for more and is refused.
	maxZstdWindow = 32 << 20
)

// fsEntry is a file of the image's merged filesystem and where it lives.
type fsEntry struct {
	layer    int    // index into the layer list
	ordinal  int    // which tar entry of that layer
	typeflag byte   // tar.TypeReg, tar.TypeSymlink or tar.TypeLink
	linkname string // for links
}

// extractModule finds the module in the image filesystem made of layers
// (bottom first), stores it under modules/ and returns its digest.
func (s *Store) extractModule(layers []string, cfg v1.Config) (string, error) {
	files, err := mergeLayers(layers, s.newLimit())
	if err != nil {
		return "", err
	}
	target := ""
	switch {
	case len(cfg.Entrypoint) > 0:
		target = cfg.Entrypoint[0]
	case len(cfg.Cmd) > 0:
		target = cfg.Cmd[0]
	}
	if target == "" {
		var wasm []string
		for p, e := range files {
			if e.typeflag == tar.TypeReg && strings.HasSuffix(p, ".wasm") {
				wasm = append(wasm, p)
			}
		}
		slices.Sort(wasm)
		switch len(wasm) {
		case 0:
			return "", errors.New("no entrypoint or cmd in the image config and no .wasm file in its filesystem")
		case 1:
			target = wasm[0]
		default:
			return "", fmt.Errorf("no entrypoint or cmd in the image config and several .wasm files in its filesystem: %s", strings.Join(wasm, ", "))
		}
	}
	if !path.IsAbs(target) {
		target = path.Join("/", cfg.WorkingDir, target)
	}
	p, e, err := resolve(files, path.Clean(target))
	if err != nil {
		return "", fmt.Errorf("module %s: %w", target, err)
	}
	digest, err := s.copyEntry(layers[e.layer], e.ordinal)
	if err != nil {
		return "", fmt.Errorf("module %s: %w", p, err)
	}
	return digest, nil
}

// mergeLayers applies the layers in order, with OCI whiteouts, and returns
// the regular files and links of the result by absolute path.
func mergeLayers(layers []string, lim *unpackLimit) (map[string]fsEntry, error) {
	merged := map[string]fsEntry{}
	for i, layer := range layers {
		added := map[string]fsEntry{}
		var hidden, opaque []string
		err := walkLayer(layer, lim, func(ordinal int, h *tar.Header, _ io.Reader) (bool, error) {
			p := cleanPath(h.Name)
			dir, base := path.Split(p)
			switch {
			case base == opaqueWhiteout:
				opaque = append(opaque, path.Clean(dir))
			case strings.HasPrefix(base, whiteoutPrefix):
				hidden = append(hidden, path.Join(dir, base[len(whiteoutPrefix):]))
			case h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink:
				added[p] = fsEntry{layer: i, ordinal: ordinal, typeflag: h.Typeflag, linkname: h.Linkname}
			default:
				delete(added, p) // a directory or device replaces a file
			}
			return true, nil
		})
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		// Whiteouts hide what lower layers have, not what this one adds.
		// Each path's ancestors are looked up in sets: a layer of many
		// whiteouts over many files costs no more than their sum.
		if len(hidden) > 0 || len(opaque) > 0 {
			hiddenSet, opaqueSet := map[string]bool{}, map[string]bool{}
			for _, h := range hidden {
				hiddenSet[h] = true
			}
			for _, d := range opaque {
				opaqueSet[d] = true
			}
			for p := range merged {
				if covered(p, hiddenSet, opaqueSet) {
					delete(merged, p)
				}
			}
		}
		for p, e := range added {
			merged[p] = e
		}
	}
	return merged, nil
}

// covered reports whether the absolute clean path p is hidden: it or a
// directory above it is whited out, or a directory above it is opaque.
func covered(p string, hidden, opaque map[string]bool) bool {
	for q := p; ; q = path.Dir(q) {
		if hidden[q] || q != p && opaque[q] {
			return true
		}
		if q == "/" {
			return false
		}
	}
}

// cleanPath makes a tar entry name an absolute clean path.
func cleanPath(name string) string { return path.Clean("/" + name) }

// resolve follows symbolic and hard links, also in parent directories, to
// the regular file p names.
func resolve(files map[string]fsEntry, p string) (string, fsEntry, error) {
	for range maxLinkHops {
		e, ok := files[p]
		if !ok {
			// A parent directory may be a symbolic link.
			q, ok := resolveParent(files, p)
			if !ok {
				return p, fsEntry{}, errors.New("not found in the image filesystem")
			}
			p = q
			continue
		}
		switch e.typeflag {
		case tar.TypeReg:
			return p, e, nil
		case tar.TypeSymlink:
			if path.IsAbs(e.linkname) {
				p = path.Clean(e.linkname)
			} else {
				p = path.Join(path.Dir(p), e.linkname)
			}
		case tar.TypeLink:
			p = cleanPath(e.linkname)
		}
	}
	return p, fsEntry{}, errors.New("too many levels of links")
}

// resolveParent rewrites p if one of its parent directories is a symbolic
// link.
func resolveParent(files map[string]fsEntry, p string) (string, bool) {
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		e, ok := files[dir]
		if !ok || e.typeflag != tar.TypeSymlink {
			continue
		}
		target := e.linkname
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(dir), target)
		}
		return path.Join(target, strings.TrimPrefix(p, dir)), true
	}
	return "", false
}

// copyEntry stores the content of entry ordinal of a layer as a module and
// returns its digest.
func (s *Store) copyEntry(layer string, ordinal int) (string, error) {
	var digest string
	found := false
	err := walkLayer(layer, s.newLimit(), func(i int, h *tar.Header, r io.Reader) (bool, error) {
		if i != ordinal {
			return true, nil
		}
		found = true
		var err error
		digest, err = s.storeModule(r)
		return false, err
	})
	if err != nil {
		return "", err
	}
	if !found {
		return "", errors.New("layer is shorter than when it was read")
	}
	return digest, nil
}

// storeModule checks that r holds a wasm module and stores it under its
// digest.
func (s *Store) storeModule(r io.Reader) (string, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(len(wasmMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if !bytes.Equal(head, wasmMagic) {
		return "", fmt.Errorf("not a WebAssembly module: starts with %q, want %q", head, wasmMagic)
	}
	f, err := os.CreateTemp(s.path(tmpDir), "module-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), br)
	if err == nil {
		err = syncFile(f)
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return "", err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err := s.rename(f.Name(), s.modulePath(digest)); err != nil {
		return "", err
	}
	s.wrote(n)
	return digest, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h, _, err := v1.SHA256(f)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// unpackLimit bounds the bytes the layers of one image unpack to: what the
// tar reader reads from the decompressed streams, headers and padding
// included. A nil *unpackLimit bounds nothing.
type unpackLimit struct {
	max, used int64
}

// newLimit returns the Store's limit for one pass over an image's layers.
func (s *Store) newLimit() *unpackLimit {
	if s.maxUnpacked <= 0 {
		return &unpackLimit{max: math.MaxInt64 - 1}
	}
	return &unpackLimit{max: s.maxUnpacked}
}

// limitedReader counts what is read from r against lim.
type limitedReader struct {
	r   io.Reader
	lim *unpackLimit
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if left := l.lim.max - l.lim.used; int64(len(p)) > left+1 {
		p = p[:left+1] // one more than allowed tells "too much" from "just enough"
	}
	n, err := l.r.Read(p)
	l.lim.used += int64(n)
	if l.lim.used > l.lim.max {
		return n, fmt.Errorf("unpacks to more than %s, the most this device's image cache allows: %w", size(l.lim.max), ErrTooLarge)
	}
	return n, err
}

// walkLayer calls fn for each entry of a (possibly gzip or zstd compressed)
// tar layer until fn returns false. What the layer unpacks to counts
// against lim.
func walkLayer(layer string, lim *unpackLimit, fn func(ordinal int, h *tar.Header, r io.Reader) (bool, error)) error {
	f, err := os.Open(layer)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		// One goroutine, and a bound on the window a frame may ask for:
		// the defaults let a crafted frame reserve 512 MiB.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	if lim != nil {
		r = &limitedReader{r: r, lim: lim}
	}
	tr := tar.NewReader(r)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		more, err := fn(i, h, tr)
		if err != nil || !more {
			return err
		}
	}
}
