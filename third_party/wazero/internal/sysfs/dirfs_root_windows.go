package sysfs

import (
	"io/fs"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// On Windows a dirFS joins paths to its directory, as upstream wazero does,
// and Symlink refuses links whose target leaves it: wazero's Windows file
// functions translate flags and errors that os.Root would not.
// (edgefabric patch 0006)

func (d *dirFS) openFileRoot(string, experimentalsys.Oflag, fs.FileMode) (experimentalsys.File, experimentalsys.Errno, bool) {
	return nil, 0, false
}

func (d *dirFS) statRoot(string, bool) (sys.Stat_t, experimentalsys.Errno, bool) {
	return sys.Stat_t{}, 0, false
}

func (d *dirFS) mkdirRoot(string, fs.FileMode) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) chmodRoot(string, fs.FileMode) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) renameRoot(string, string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) rmdirRoot(string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) unlinkRoot(string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) linkRoot(string, string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) symlinkRoot(string, string) (experimentalsys.Errno, bool) { return 0, false }

func (d *dirFS) readlinkRoot(string) (string, experimentalsys.Errno, bool) { return "", 0, false }

func (d *dirFS) utimensRoot(string, int64, int64) (experimentalsys.Errno, bool) { return 0, false }
