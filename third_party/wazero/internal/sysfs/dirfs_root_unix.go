//go:build !windows

package sysfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/internal/platform"
	"github.com/tetratelabs/wazero/sys"
)

// Where the kernel does not resolve a dirFS's paths beneath its directory
// (no openat2: other Unix systems, Linux before 5.6, Android, a seccomp
// filter that refuses it), they are resolved with os.Root, which walks them
// one element at a time from a descriptor of the directory and follows
// symlinks only while they stay inside it: a path that leads out fails with
// EPERM, as with openat2. (edgefabric patch 0006)

// withRoot calls fn with the directory as an os.Root.
func (d *dirFS) withRoot(fn func(r *os.Root) error) experimentalsys.Errno {
	r, err := os.OpenRoot(d.dir)
	if err != nil {
		return rootErrno(err)
	}
	defer r.Close()
	return rootErrno(fn(r))
}

// rootErrno is UnwrapOSError, EPERM for a path that leads out of the root,
// and ENOTDIR for a root that is not a directory (os.OpenRoot's error is no
// syscall.Errno then).
func rootErrno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent",
		errors.As(err, &le) && le.Err != nil && le.Err.Error() == "path escapes from parent":
		return experimentalsys.EPERM
	case errors.As(err, &pe) && pe.Op == "open" && pe.Err != nil && pe.Err.Error() == "not a directory":
		return experimentalsys.ENOTDIR
	}
	return experimentalsys.UnwrapOSError(err)
}

// rootRel is a guest path as os.Root takes it.
func rootRel(p string) string {
	switch p {
	case "", "/":
		return "."
	}
	return p
}

func (d *dirFS) openFileRoot(rel string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno, bool) {
	var f *os.File
	errno := d.withRoot(func(r *os.Root) (err error) {
		f, err = r.OpenFile(rootRel(rel), toOsOpenFlag(flag), perm.Perm())
		return err
	})
	if errno != 0 {
		return nil, errno, true
	}
	return newOsFile(d.join(rel), flag, perm, f), 0, true
}

func (d *dirFS) statRoot(rel string, follow bool) (sys.Stat_t, experimentalsys.Errno, bool) {
	var st sys.Stat_t
	errno := d.withRoot(func(r *os.Root) error {
		stat := r.Lstat
		if follow {
			stat = r.Stat
		}
		info, err := stat(rootRel(rel))
		if err == nil {
			st = sys.NewStat_t(info)
		}
		return err
	})
	return st, errno, true
}

func (d *dirFS) mkdirRoot(rel string, perm fs.FileMode) (experimentalsys.Errno, bool) {
	return d.withRoot(func(r *os.Root) error { return r.Mkdir(rootRel(rel), perm.Perm()) }), true
}

func (d *dirFS) chmodRoot(rel string, perm fs.FileMode) (experimentalsys.Errno, bool) {
	return d.withRoot(func(r *os.Root) error { return r.Chmod(rootRel(rel), perm) }), true
}

// renameRoot renames with renameat(2) between the two parent directories,
// opened inside the root: os.Root's Rename, like os.Rename, refuses to
// replace a directory (EEXIST), where rename(2) replaces an empty one and
// fails with ENOTEMPTY or EISDIR otherwise.
func (d *dirFS) renameRoot(from, to string) (experimentalsys.Errno, bool) {
	if from == to {
		return 0, true
	}
	return d.withRoot(func(r *os.Root) error {
		fromDir, fromBase := splitRel(from)
		toDir, toBase := splitRel(to)
		fd, err := r.Open(fromDir)
		if err != nil {
			return err
		}
		defer fd.Close()
		td, err := r.Open(toDir)
		if err != nil {
			return err
		}
		defer td.Close()
		return unix.Renameat(int(fd.Fd()), fromBase, int(td.Fd()), toBase)
	}), true
}

// splitRel splits a guest path into its directory (inside the root) and
// its last element, which keeps rel's trailing slash.
func splitRel(rel string) (dir, base string) {
	trimmed := strings.TrimRight(rel, "/")
	if trimmed == "" {
		trimmed = "."
	}
	dir, base = path.Split(trimmed)
	if len(trimmed) < len(rel) {
		base += "/"
	}
	return rootRel(strings.TrimRight(dir, "/")), base
}

// rmdirRoot and unlinkRoot look at what rel is first: os.Root's Remove
// removes either, where rmdir and unlink each refuse the other kind.
func (d *dirFS) rmdirRoot(rel string) (experimentalsys.Errno, bool) {
	return d.withRoot(func(r *os.Root) error {
		info, err := r.Lstat(rootRel(rel))
		if err != nil {
			return err
		}
		if !info.IsDir() {
			return experimentalsys.ENOTDIR
		}
		return r.Remove(rootRel(rel))
	}), true
}

func (d *dirFS) unlinkRoot(rel string) (experimentalsys.Errno, bool) {
	return d.withRoot(func(r *os.Root) error {
		info, err := r.Lstat(rootRel(rel))
		if err != nil {
			return err
		}
		if info.IsDir() {
			return experimentalsys.EISDIR
		}
		return r.Remove(rootRel(rel))
	}), true
}

func (d *dirFS) linkRoot(oldName, newName string) (experimentalsys.Errno, bool) {
	return d.withRoot(func(r *os.Root) error { return r.Link(rootRel(oldName), rootRel(newName)) }), true
}

func (d *dirFS) symlinkRoot(target, link string) (experimentalsys.Errno, bool) {
	return d.withRoot(func(r *os.Root) error { return r.Symlink(target, rootRel(link)) }), true
}

func (d *dirFS) readlinkRoot(rel string) (dst string, errno experimentalsys.Errno, ok bool) {
	errno = d.withRoot(func(r *os.Root) (err error) {
		dst, err = r.Readlink(rootRel(rel))
		return err
	})
	return platform.ToPosixPath(dst), errno, true
}

// utimensRoot resolves rel inside the directory, then sets the times by its
// path: utimens has no form relative to a descriptor here. A rename racing
// with it could redirect it, to times only.
func (d *dirFS) utimensRoot(rel string, atim, mtim int64) (experimentalsys.Errno, bool) {
	if errno := d.withRoot(func(r *os.Root) error { _, err := r.Stat(rootRel(rel)); return err }); errno != 0 {
		return errno, true
	}
	return utimens(d.join(rel), atim, mtim), true
}
