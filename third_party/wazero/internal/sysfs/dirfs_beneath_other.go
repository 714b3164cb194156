//go:build !linux

package sysfs

import (
	"io/fs"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// Only Linux resolves a dirFS's paths beneath its directory with openat2 (see
// dirfs_beneath_linux.go); other Unix systems use os.Root (dirfs_root_unix.go),
// Windows joins them to it and Symlink refuses links whose target leaves it.
// (edgefabric patch 0006)

func beneathSupported() bool { return false }

func (d *dirFS) openFileBeneath(string, experimentalsys.Oflag, fs.FileMode) (experimentalsys.File, experimentalsys.Errno, bool) {
	return nil, 0, false
}

func (d *dirFS) statBeneath(string, bool) (sys.Stat_t, experimentalsys.Errno, bool) {
	return sys.Stat_t{}, 0, false
}

func (d *dirFS) utimensBeneath(string, int64, int64) (experimentalsys.Errno, bool) {
	return 0, false
}

func (d *dirFS) mkdirBeneath(string, fs.FileMode) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) chmodBeneath(string, fs.FileMode) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) renameBeneath(string, string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) rmdirBeneath(string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) unlinkBeneath(string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) linkBeneath(string, string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) symlinkBeneath(string, string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) readlinkBeneath(string) (string, experimentalsys.Errno, bool) { return "", 0, false }
