//go:build linux

package sysfs

import (
	"io/fs"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// On Linux, a dirFS has the kernel resolve every path beneath its directory
// (openat2 with RESOLVE_BENEATH, Linux 5.6): no "..", absolute symlink or
// relative symlink that climbs out of the directory leads outside it, however
// the guest arranged the directory's symlinks. Such a path fails with EPERM,
// as a path with ".." that leaves a pre-open does. The call is then made
// relative to the file descriptor of the resolved parent directory (mkdirat,
// unlinkat, renameat, ...), so that the path is not resolved again. On a
// kernel without openat2 (ENOSYS), where a seccomp filter refuses it (EPERM),
// and on Android (see probeBeneath), they are resolved with os.Root instead
// (dirfs_root_unix.go).
//
// (edgefabric patch 0006; upstream wazero joins the paths and lets the host
// follow symlinks, which a guest can create.)

// beneathMissing is set when openat2 is not to be used: the probe found it
// missing or filtered, or a call failed with ENOSYS.
var beneathMissing atomic.Bool

// probeBeneath tries openat2 once before its first use. Android's app
// sandbox kills a process for a system call its seccomp filter does not
// allow, so openat2 is never tried there; other seccomp profiles (older
// container runtimes') answer EPERM or ENOSYS for it, and it is then not used.
var probeBeneath = sync.OnceFunc(func() {
	if runtime.GOOS == "android" || os.Getenv("WAZERO_EDGEFABRIC_NO_OPENAT2") != "" {
		// (the variable is for tests of the fallback on kernels with openat2)
		beneathMissing.Store(true)
		return
	}
	how := unix.OpenHow{Flags: uint64(unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC), Resolve: unix.RESOLVE_BENEATH}
	fd, err := unix.Openat2(unix.AT_FDCWD, ".", &how)
	switch err {
	case nil:
		unix.Close(fd)
	case unix.ENOSYS, unix.EPERM:
		beneathMissing.Store(true)
	}
})

func beneathSupported() bool {
	probeBeneath()
	return !beneathMissing.Load()
}

// openBeneath opens rel beneath d.dir with flags (O_CLOEXEC added). ok is
// false if the kernel has no openat2: the caller then falls back.
func (d *dirFS) openBeneath(rel string, flags int, perm uint32) (fd int, errno experimentalsys.Errno, ok bool) {
	if !beneathSupported() {
		return -1, 0, false
	}
	root, err := unix.Open(d.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, experimentalsys.UnwrapOSError(err), true
	}
	defer unix.Close(root)
	if rel == "" || rel == "/" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_LARGEFILE),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flags&unix.O_CREAT != 0 || flags&unix.O_TMPFILE == unix.O_TMPFILE { // else openat2 wants no mode
		how.Mode = uint64(perm & 0o7777)
	}
	for retries := 0; ; retries++ {
		fd, err = unix.Openat2(root, rel, &how)
		if (err == unix.EINTR || err == unix.EAGAIN) && retries < 16 {
			continue
		}
		break
	}
	switch err {
	case nil:
		return fd, 0, true
	case unix.ENOSYS:
		beneathMissing.Store(true)
		return -1, 0, false
	case unix.EXDEV:
		return -1, experimentalsys.EPERM, true // out of the directory
	default:
		return -1, experimentalsys.UnwrapOSError(err), true
	}
}

// parentBeneath opens the parent directory of rel beneath d.dir (O_PATH) and
// returns it with the last element of rel (with rel's trailing slash).
func (d *dirFS) parentBeneath(rel string) (dirfd int, base string, errno experimentalsys.Errno, ok bool) {
	trimmed := strings.TrimRight(rel, "/")
	if trimmed == "" {
		trimmed = "."
	}
	dir, base := path.Split(trimmed)
	if len(trimmed) < len(rel) {
		base += "/"
	}
	dirfd, errno, ok = d.openBeneath(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	return dirfd, base, errno, ok
}

// openFileBeneath is OpenFile.
func (d *dirFS) openFileBeneath(rel string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno, bool) {
	fd, errno, ok := d.openBeneath(rel, toOsOpenFlag(flag), uint32(perm.Perm()))
	if !ok || errno != 0 {
		return nil, errno, ok
	}
	p := d.join(rel)
	return newOsFile(p, flag, perm, os.NewFile(uintptr(fd), p)), 0, true
}

// statBeneath is Stat (follow) or Lstat.
func (d *dirFS) statBeneath(rel string, follow bool) (sys.Stat_t, experimentalsys.Errno, bool) {
	flags := unix.O_PATH
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, errno, ok := d.openBeneath(rel, flags, 0)
	if !ok || errno != 0 {
		return sys.Stat_t{}, errno, ok
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return sys.Stat_t{}, experimentalsys.UnwrapOSError(err), true
	}
	return sys.NewStat_t(info), 0, true
}

// atBeneath calls fn with the parent directory of rel and rel's last
// element. ok is false if the kernel has no openat2.
func (d *dirFS) atBeneath(rel string, fn func(dirfd int, base string) error) (experimentalsys.Errno, bool) {
	dirfd, base, errno, ok := d.parentBeneath(rel)
	if !ok || errno != 0 {
		return errno, ok
	}
	defer unix.Close(dirfd)
	return experimentalsys.UnwrapOSError(fn(dirfd, base)), true
}

// at2Beneath is atBeneath for two paths.
func (d *dirFS) at2Beneath(from, to string, fn func(fromfd int, frombase string, tofd int, tobase string) error) (experimentalsys.Errno, bool) {
	fromfd, frombase, errno, ok := d.parentBeneath(from)
	if !ok || errno != 0 {
		return errno, ok
	}
	defer unix.Close(fromfd)
	tofd, tobase, errno, ok := d.parentBeneath(to)
	if !ok || errno != 0 {
		return errno, ok
	}
	defer unix.Close(tofd)
	return experimentalsys.UnwrapOSError(fn(fromfd, frombase, tofd, tobase)), true
}

// utimensBeneath is Utimens, which follows a final symlink.
func (d *dirFS) utimensBeneath(rel string, atim, mtim int64) (experimentalsys.Errno, bool) {
	times := timesToTimespecs(atim, mtim)
	fd, errno, ok := d.openBeneath(rel, unix.O_PATH, 0)
	if !ok || errno != 0 || times == nil {
		return errno, ok
	}
	defer unix.Close(fd)
	// An O_PATH descriptor cannot be given to futimens; its /proc link can.
	err := syscall.UtimesNano("/proc/self/fd/"+strconv.Itoa(fd), times[:])
	if err == syscall.ENOENT { // no /proc: open the file itself
		rfd, errno, _ := d.openBeneath(rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
		if errno != 0 {
			return errno, true
		}
		defer unix.Close(rfd)
		return futimens(uintptr(rfd), atim, mtim), true
	}
	return experimentalsys.UnwrapOSError(err), true
}

func (d *dirFS) mkdirBeneath(rel string, perm fs.FileMode) (experimentalsys.Errno, bool) {
	return d.atBeneath(rel, func(dirfd int, base string) error { return unix.Mkdirat(dirfd, base, uint32(perm.Perm())) })
}

func (d *dirFS) chmodBeneath(rel string, perm fs.FileMode) (experimentalsys.Errno, bool) {
	fd, errno, ok := d.openBeneath(rel, unix.O_PATH, 0)
	if !ok || errno != 0 {
		return errno, ok
	}
	defer unix.Close(fd)
	return experimentalsys.UnwrapOSError(unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), uint32(perm.Perm()), 0)), true
}

func (d *dirFS) renameBeneath(from, to string) (experimentalsys.Errno, bool) {
	if from == to {
		return 0, beneathSupported()
	}
	return d.at2Beneath(from, to, func(fromfd int, frombase string, tofd int, tobase string) error {
		return unix.Renameat(fromfd, frombase, tofd, tobase)
	})
}

func (d *dirFS) rmdirBeneath(rel string) (experimentalsys.Errno, bool) {
	return d.atBeneath(rel, func(dirfd int, base string) error { return unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR) })
}

func (d *dirFS) unlinkBeneath(rel string) (experimentalsys.Errno, bool) {
	errno, ok := d.atBeneath(rel, func(dirfd int, base string) error { return unix.Unlinkat(dirfd, base, 0) })
	if errno == experimentalsys.EPERM {
		// Linux's unlink of a directory (as unlink above).
		if st, e, _ := d.statBeneath(rel, false); e == 0 && st.Mode.IsDir() {
			errno = experimentalsys.EISDIR
		}
	}
	return errno, ok
}

func (d *dirFS) linkBeneath(oldName, newName string) (experimentalsys.Errno, bool) {
	return d.at2Beneath(oldName, newName, func(oldfd int, oldbase string, newfd int, newbase string) error {
		return unix.Linkat(oldfd, oldbase, newfd, newbase, 0)
	})
}

func (d *dirFS) symlinkBeneath(target, link string) (experimentalsys.Errno, bool) {
	return d.atBeneath(link, func(dirfd int, base string) error { return unix.Symlinkat(target, dirfd, base) })
}

func (d *dirFS) readlinkBeneath(rel string) (dst string, errno experimentalsys.Errno, ok bool) {
	errno, ok = d.atBeneath(rel, func(dirfd int, base string) error {
		buf := make([]byte, 256)
		for {
			n, err := unix.Readlinkat(dirfd, base, buf)
			if err != nil {
				return err
			}
			if n < len(buf) {
				dst = string(buf[:n])
				return nil
			}
			buf = make([]byte, 2*len(buf))
		}
	})
	return dst, errno, ok
}
