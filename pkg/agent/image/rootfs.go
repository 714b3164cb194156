package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// unpackRootFS applies the layers (bottom first) into a new directory dst,
// with OCI whiteouts. Every file operation goes through an os.Root, so no
// entry (however its path or the symbolic links before it are crafted) can
// write outside dst. Symbolic links are created as they are (they are
// resolved inside the container's root when it runs); hard links must
// point inside the filesystem. Devices, FIFOs and sockets are skipped (a
// lite container gets none); setuid and setgid bits are dropped. Owners are
// kept only when the agent runs as root. dst appears complete or not at all.
func (s *Store) unpackRootFS(layers []string, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil // unpacked by an earlier pull
	}
	tmp, err := os.MkdirTemp(s.path(tmpDir), "rootfs-")
	if err != nil {
		return err
	}
	defer func() { _ = removeTree(tmp) }()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	chown := os.Geteuid() == 0
	lim := s.newLimit()
	for i, layer := range layers {
		err := walkLayer(layer, lim, func(_ int, h *tar.Header, r io.Reader) (bool, error) {
			if err := applyEntry(root, h, r, chown); err != nil {
				return false, fmt.Errorf("%s: %w", h.Name, err)
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("layer %d: %w", i+1, err)
		}
	}
	if err := root.Close(); err != nil {
		return err
	}
	// The files reach the disk before their directory gets its name: after
	// a crash, dst is complete or absent.
	if err := syncTree(tmp); err != nil {
		return err
	}
	if err := s.rename(tmp, dst); err != nil {
		if _, statErr := os.Stat(dst); statErr == nil {
			return nil // a concurrent pull of another reference won
		}
		return err
	}
	s.wrote(lim.used) // about what the files take
	return nil
}

// applyEntry applies one tar entry of a layer to root.
func applyEntry(root *os.Root, h *tar.Header, r io.Reader, chown bool) error {
	p := strings.TrimPrefix(cleanPath(h.Name), "/")
	if p == "" {
		return nil // the root itself
	}
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	switch {
	case base == opaqueWhiteout:
		// Hide everything lower layers put in dir; this layer's entries follow.
		entries, err := fs.ReadDir(root.FS(), dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := root.RemoveAll(path.Join(dir, e.Name())); err != nil {
				return err
			}
		}
		return nil
	case strings.HasPrefix(base, whiteoutPrefix):
		return root.RemoveAll(path.Join(dir, base[len(whiteoutPrefix):]))
	}

	if dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	mode := fs.FileMode(h.Mode) & (fs.ModePerm | fs.ModeSticky)
	if h.Mode&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if fi, err := root.Lstat(p); err == nil && !fi.IsDir() {
			if err := root.Remove(p); err != nil {
				return err
			}
		}
		if err := root.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := root.Chmod(p, mode|fs.ModeDir); err != nil {
			return err
		}
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // TypeRegA is in old layers
		if err := replace(root, p); err != nil {
			return err
		}
		f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if closeErr := f.Close(); err == nil {
			err = closeErr
		}
		if err != nil {
			return err
		}
		if err := root.Chmod(p, mode); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := replace(root, p); err != nil {
			return err
		}
		if err := root.Symlink(h.Linkname, p); err != nil {
			return err
		}
	case tar.TypeLink:
		target := strings.TrimPrefix(cleanPath(h.Linkname), "/")
		if err := replace(root, p); err != nil {
			return err
		}
		if err := root.Link(target, p); err != nil {
			return err
		}
	default:
		return nil // devices, FIFOs, sockets: not in a lite container
	}
	if chown {
		if err := root.Lchown(p, h.Uid, h.Gid); err != nil {
			return err
		}
	}
	return nil
}

// replace removes what a new entry at p replaces (not directories: a file
// replacing a directory removes it and its content).
func replace(root *os.Root, p string) error {
	if _, err := root.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return root.RemoveAll(p)
}

// removeTree removes dir even where the image made directories read-only.
func removeTree(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
