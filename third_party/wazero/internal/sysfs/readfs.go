package sysfs

import (
	"io/fs"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

type ReadFS struct {
	experimentalsys.FS
}

// OpenFile implements the same method as documented on sys.FS
func (r *ReadFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	// Mask the mutually exclusive bits as they determine write mode.
	// O_TRUNC writes too, even with O_RDONLY. The errors are Linux's for a
	// read-only mount: EISDIR for a directory, else EROFS.
	mode := flag & (experimentalsys.O_RDONLY | experimentalsys.O_WRONLY | experimentalsys.O_RDWR)
	if mode == experimentalsys.O_WRONLY || mode == experimentalsys.O_RDWR || flag&experimentalsys.O_TRUNC != 0 {
		// Return the correct error if a directory was opened for write.
		if flag&experimentalsys.O_DIRECTORY != 0 {
			return nil, experimentalsys.EISDIR
		}
		if st, errno := r.FS.Stat(path); errno == 0 && st.Mode.IsDir() {
			return nil, experimentalsys.EISDIR
		}
		return nil, experimentalsys.EROFS
	}

	// O_CREAT opens a file that exists, and cannot create one.
	var errno experimentalsys.Errno
	var f experimentalsys.File
	if flag&experimentalsys.O_CREAT != 0 {
		excl := flag&experimentalsys.O_EXCL != 0
		flag &^= experimentalsys.O_CREAT | experimentalsys.O_EXCL
		f, errno = r.FS.OpenFile(path, flag, perm)
		switch {
		case errno == experimentalsys.ENOENT:
			return nil, experimentalsys.EROFS
		case errno == 0 && excl:
			_ = f.Close()
			return nil, experimentalsys.EEXIST
		}
	} else {
		f, errno = r.FS.OpenFile(path, flag, perm)
	}
	if errno != 0 {
		return nil, errno
	}
	return &readFile{f}, 0
}

// Mkdir implements the same method as documented on sys.FS
func (r *ReadFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	return experimentalsys.EROFS
}

// Chmod implements the same method as documented on sys.FS
func (r *ReadFS) Chmod(path string, perm fs.FileMode) experimentalsys.Errno {
	return experimentalsys.EROFS
}

// Rename implements the same method as documented on sys.FS
func (r *ReadFS) Rename(from, to string) experimentalsys.Errno {
	return experimentalsys.EROFS
}

// Rmdir implements the same method as documented on sys.FS
func (r *ReadFS) Rmdir(path string) experimentalsys.Errno {
	return experimentalsys.EROFS
}

// Link implements the same method as documented on sys.FS
func (r *ReadFS) Link(_, _ string) experimentalsys.Errno {
	return experimentalsys.EROFS
}

// Symlink implements the same method as documented on sys.FS
func (r *ReadFS) Symlink(_, _ string) experimentalsys.Errno {
	return experimentalsys.EROFS
}

// Unlink implements the same method as documented on sys.FS
func (r *ReadFS) Unlink(path string) experimentalsys.Errno {
	return experimentalsys.EROFS
}

// Utimens implements the same method as documented on sys.FS
func (r *ReadFS) Utimens(path string, atim, mtim int64) experimentalsys.Errno {
	return experimentalsys.EROFS
}

// compile-time check to ensure readFile implements api.File.
var _ experimentalsys.File = (*readFile)(nil)

type readFile struct {
	experimentalsys.File
}

// Write implements the same method as documented on sys.File.
func (r *readFile) Write([]byte) (int, experimentalsys.Errno) {
	return 0, r.writeErr()
}

// Pwrite implements the same method as documented on sys.File.
func (r *readFile) Pwrite([]byte, int64) (n int, errno experimentalsys.Errno) {
	return 0, r.writeErr()
}

// Truncate implements the same method as documented on sys.File.
func (r *readFile) Truncate(int64) experimentalsys.Errno {
	return r.writeErr()
}

// Sync implements the same method as documented on sys.File: as on Linux,
// syncing a file opened read-only succeeds, with nothing to write.
func (r *readFile) Sync() experimentalsys.Errno {
	return 0
}

// Datasync implements the same method as documented on sys.File.
func (r *readFile) Datasync() experimentalsys.Errno {
	return 0
}

// Utimens implements the same method as documented on sys.File.
func (r *readFile) Utimens(int64, int64) experimentalsys.Errno {
	return experimentalsys.EBADF
}

func (r *readFile) writeErr() experimentalsys.Errno {
	if isDir, errno := r.IsDir(); errno != 0 {
		return errno
	} else if isDir {
		return experimentalsys.EISDIR
	}
	return experimentalsys.EBADF
}
