package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountTmpfs makes dir memory-backed: it mounts a tmpfs of at most size
// bytes (0: the kernel's default) there, and reports whether dir is a tmpfs
// mount point to unmount with the pod (true also when an earlier run of the
// pod mounted it). It reports false with no error when dir is on a tmpfs
// already (the agent's data lives in memory).
func mountTmpfs(dir string, size int64, mode os.FileMode) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		var self, parent unix.Stat_t
		if unix.Stat(dir, &self) == nil && unix.Stat(filepath.Dir(dir), &parent) == nil && self.Dev != parent.Dev {
			return true, nil
		}
		return false, nil
	}
	if os.Geteuid() != 0 {
		return false, errors.New("mounting a tmpfs needs root")
	}
	opts := "mode=" + strconv.FormatUint(uint64(mode.Perm()), 8)
	if size > 0 {
		opts += ",size=" + strconv.FormatInt(size, 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return false, err
	}
	return true, nil
}

func unmountTmpfs(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// unmountUnder unmounts every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if p := f[4]; p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}
