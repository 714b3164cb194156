//go:build !linux

package image

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncTree flushes the regular files under dir to the disk, one by one.
func syncTree(dir string) error {
	if noSync {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}
