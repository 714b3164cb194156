package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// dataDir is the symbolic link, inside a volume with files, to the current
// version of its files; each top-level entry is a link through it. Swapping
// it is how an update reaches the files atomically, as the kubelet does.
const dataDir = "..data"

// volumeSet is the volumes of one workload on the device.
type volumeSet struct {
	dir   string            // <VolumeDir>/<uid>
	paths map[string]string // host directory by volume name
	mem   []string          // tmpfs mounts to unmount when the pod goes
}

// isDataVolume reports whether v's contents come from the provider; such
// volumes are always mounted read-only, as the kubelet mounts them.
func isDataVolume(v *hubv1.Volume) bool { return v.GetKind() != "emptyDir" && v.GetKind() != "" }

// inMemory reports whether v must never touch the device's disk.
func inMemory(v *hubv1.Volume) bool { return v.GetMemory() || v.GetSensitive() }

// setupVolumes creates the workload's volumes and writes their files, as
// spec (the latest) has them.
// Volumes kept in memory are a tmpfs (as root on Linux) or live under the
// device's shared-memory directory; where neither exists they are refused,
// never written to disk.
func (w *workload) setupVolumes(spec *hubv1.Workload) (*volumeSet, error) {
	vs := &volumeSet{dir: filepath.Join(w.s.cfg.VolumeDir, w.spec.GetUid()), paths: map[string]string{}}
	for _, v := range spec.GetVolumes() {
		p, err := w.s.volumePath(vs, v)
		if err != nil {
			return vs, fmt.Errorf("volume %q: %w", v.GetName(), err)
		}
		vs.paths[v.GetName()] = p
		if isDataVolume(v) {
			if err := writeFiles(p, v.GetFiles()); err != nil {
				return vs, fmt.Errorf("volume %q: %w", v.GetName(), err)
			}
		}
	}
	return vs, nil
}

// volumePath creates the directory of volume v.
func (s *Supervisor) volumePath(vs *volumeSet, v *hubv1.Volume) (string, error) {
	name := v.GetName()
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", fmt.Errorf("bad volume name %q", name)
	}
	// As the kubelet: an emptyDir is writable by any user the container
	// runs as, the files of the other kinds are readable by their mode.
	mode := os.FileMode(0o755)
	if !isDataVolume(v) {
		mode = 0o777
	}
	if !inMemory(v) {
		p := filepath.Join(vs.dir, "volumes", name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", err
		}
		return p, os.Chmod(p, mode)
	}
	p := filepath.Join(vs.dir, "memory", name)
	if err := os.MkdirAll(p, 0o700); err != nil {
		return "", err
	}
	if mounted, err := mountTmpfs(p, v.GetSizeLimitBytes(), mode); err == nil {
		if mounted {
			vs.mem = append(vs.mem, p)
		}
		return p, nil
	}
	// No tmpfs of our own: the device's shared memory, if it has one.
	if s.cfg.SharedMemoryDir == "" {
		os.Remove(p)
		return "", errors.New("this device can keep no volume in memory (no tmpfs, no shared-memory directory): refusing to write it to disk")
	}
	os.Remove(p)
	p = filepath.Join(s.cfg.SharedMemoryDir, filepath.Base(vs.dir), name)
	if err := os.MkdirAll(p, 0o700); err != nil {
		return "", err
	}
	return p, os.Chmod(p, mode)
}

// removeOrphanVolumes removes the volumes of pods the device no longer runs
// (deleted while the agent was down, or left by a crash): mounts first, so
// that nothing is removed through one.
func (s *Supervisor) removeOrphanVolumes(ws []*hubv1.Workload) {
	keep := map[string]bool{}
	for _, w := range ws {
		keep[w.GetUid()] = true
	}
	for _, root := range []string{s.cfg.VolumeDir, s.cfg.SharedMemoryDir} {
		if root == "" {
			continue
		}
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if keep[e.Name()] || !e.IsDir() {
				continue
			}
			dir := filepath.Join(root, e.Name())
			if err := unmountUnder(dir); err != nil {
				s.log.Warn("unmount orphan volumes", "dir", dir, "err", err)
				continue
			}
			if err := os.RemoveAll(dir); err != nil {
				s.log.Warn("remove orphan volumes", "dir", dir, "err", err)
			}
		}
	}
}

// removeVolumes removes the workload's volumes: the pod is gone.
func (w *workload) removeVolumes(vs *volumeSet) {
	if vs == nil {
		return
	}
	for _, p := range vs.mem {
		if err := unmountTmpfs(p); err != nil {
			w.s.log.Warn("unmount memory volume", "pod", w.key(), "path", p, "err", err)
			return // never remove through a mount still in place
		}
	}
	if err := os.RemoveAll(vs.dir); err != nil {
		w.s.log.Warn("remove volumes", "pod", w.key(), "err", err)
	}
	if w.s.cfg.SharedMemoryDir != "" {
		_ = os.RemoveAll(filepath.Join(w.s.cfg.SharedMemoryDir, filepath.Base(vs.dir)))
	}
}

// releaseMemory unmounts the workload's tmpfs volumes when it stops without
// being deleted (the agent stops, or the spec changed): their contents are
// written again from the desired state when it runs next, and secrets do not
// stay mounted on a device whose agent is gone.
func (w *workload) releaseMemory(vs *volumeSet) {
	if vs == nil {
		return
	}
	for _, p := range vs.mem {
		if err := unmountTmpfs(p); err != nil {
			w.s.log.Warn("unmount memory volume", "pod", w.key(), "path", p, "err", err)
		}
	}
}

// latest is the workload's latest spec: the one it runs, or a newer one
// whose volume contents changed.
func (w *workload) latest() *hubv1.Workload {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.newer != nil {
		return w.newer
	}
	return w.spec
}

// volumesHash is the hash of the latest volume contents.
func (w *workload) volumesHash() string { return w.latest().GetVolumesHash() }

// updateVolumes writes the new contents of the data volumes of spec; a
// workload whose volumes are not set up yet writes them when they are.
func (w *workload) updateVolumes(spec *hubv1.Workload) {
	w.mu.Lock()
	vs := w.vols
	w.newer = spec
	w.mu.Unlock()
	if vs == nil {
		return
	}
	for _, v := range spec.GetVolumes() {
		p, ok := vs.paths[v.GetName()]
		if !ok || !isDataVolume(v) {
			continue
		}
		if err := writeFiles(p, v.GetFiles()); err != nil {
			w.s.log.Warn("update volume", "pod", w.key(), "volume", v.GetName(), "err", err)
			w.event("", "Warning", reasons.FailedMount, "MountVolume.SetUp failed for volume %q: %v", v.GetName(), err)
		}
	}
}

// writeFiles makes dir hold exactly files, atomically for readers: the files
// go into a new timestamped directory, then the ..data link swaps to it, then
// top-level links are added or removed, then the old version is removed.
func writeFiles(dir string, files []*hubv1.VolumeFile) error {
	version := "..v" + strconv.FormatInt(time.Now().UnixNano(), 10)
	vdir := filepath.Join(dir, version)
	if err := os.Mkdir(vdir, 0o755); err != nil {
		return err
	}
	top := map[string]bool{}
	for _, f := range files {
		rel := path.Clean(f.GetPath())
		if rel == "." || path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(rel, "..") {
			os.RemoveAll(vdir)
			return fmt.Errorf("file path %q leaves the volume", f.GetPath())
		}
		p := filepath.Join(vdir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			os.RemoveAll(vdir)
			return err
		}
		mode := os.FileMode(f.GetMode()) & 0o777
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, f.GetData(), mode); err != nil {
			os.RemoveAll(vdir)
			return err
		}
		if err := os.Chmod(p, mode); err != nil { // not masked by the umask
			os.RemoveAll(vdir)
			return err
		}
		top[strings.SplitN(rel, "/", 2)[0]] = true
	}
	old, _ := os.Readlink(filepath.Join(dir, dataDir))
	tmpLink := filepath.Join(dir, "..data_tmp")
	os.Remove(tmpLink)
	if err := os.Symlink(version, tmpLink); err != nil {
		os.RemoveAll(vdir)
		return err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDir)); err != nil {
		os.RemoveAll(vdir)
		return err
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join(dataDir, name) {
			continue
		}
		os.RemoveAll(link)
		if err := os.Symlink(filepath.Join(dataDir, name), link); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") {
			if n != version && n != dataDir && (n == old || strings.HasPrefix(n, "..v")) {
				os.RemoveAll(filepath.Join(dir, n))
			}
			continue
		}
		if !top[n] {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
	return nil
}

// mounts returns the container's volume mounts as its runtime takes them,
// each resolved beneath its volume (see openBeneath), and a function that
// closes the directories it holds open: to be called once the container
// has ended. It runs at every start of the container, since what the
// workload left in its volumes may have changed since the last.
func (w *workload) mounts(c *hubv1.Container, vs *volumeSet) (_ []Mount, release func(), _ error) {
	var out []Mount
	var open []*os.File
	release = func() {
		for _, f := range open {
			f.Close()
		}
	}
	for _, m := range c.GetVolumeMounts() {
		host, ok := vs.paths[m.GetName()]
		if !ok {
			release()
			return nil, nil, fmt.Errorf("volume %q is not defined by the pod", m.GetName())
		}
		vi := slices.IndexFunc(w.spec.GetVolumes(), func(v *hubv1.Volume) bool { return v.GetName() == m.GetName() })
		data := vi >= 0 && isDataVolume(w.spec.GetVolumes()[vi])
		readOnly := m.GetReadOnly() || data
		f, real, err := openBeneath(host, m.GetSubPath(), !data)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("volume %q: %w", m.GetName(), err)
		}
		open = append(open, f)
		out = append(out, Mount{Name: m.GetName(), HostPath: real, Pinned: pinnedPath(f), Path: m.GetMountPath(), ReadOnly: readOnly})
	}
	return out, release, nil
}

// errLeavesVolume is a subPath that leads out of its volume: by "..", as an
// absolute path, or through a symbolic link, which the workload may have
// made itself.
var errLeavesVolume = errors.New("leads out of volume")

// maxLinks is how many symbolic links a path may go through, as Linux's
// MAXSYMLINKS.
const maxLinks = 40

// openBeneath opens subPath (slash-separated; empty for the volume itself)
// in the volume directory dir, resolving it as the kernel would with dir as
// the root, but refusing any path that leaves dir: symbolic links are
// followed only while they stay inside (a relative target that climbs out,
// or an absolute one, is refused). With create, missing directories are made
// (an emptyDir's subPath). It returns the file opened through os.Root,
// which cannot leave dir however the volume changes meanwhile, and its real
// path: beneath dir, with no symbolic link in it.
func openBeneath(dir, subPath string, create bool) (*os.File, string, error) {
	rel := path.Clean("/" + subPath)[1:] // never above the root, lexically
	if subPath != "" && (path.IsAbs(subPath) || rel != path.Clean(subPath) || strings.HasPrefix(path.Clean(subPath), "../")) {
		return nil, "", fmt.Errorf("subPath %q %w", subPath, errLeavesVolume)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	real, err := resolveBeneath(root, rel, create)
	if err != nil {
		return nil, "", fmt.Errorf("subPath %q: %w", subPath, err)
	}
	f, err := root.OpenFile(real, os.O_RDONLY|openNoBlock, 0) // a FIFO the workload left must not block the agent
	if err != nil {
		return nil, "", fmt.Errorf("subPath %q: %w", subPath, err)
	}
	if fi, err := f.Stat(); err != nil || (!fi.IsDir() && !fi.Mode().IsRegular()) {
		f.Close()
		return nil, "", fmt.Errorf("subPath %q is neither a directory nor a file", subPath)
	}
	return f, filepath.Join(dir, filepath.FromSlash(real)), nil
}

// resolveBeneath resolves rel in root to a path with no symbolic links,
// never leaving root (see openBeneath); "." is the root itself.
func resolveBeneath(root *os.Root, rel string, create bool) (string, error) {
	var done []string // resolved: real directories
	todo := strings.Split(rel, "/")
	links := 0
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", errLeavesVolume
			}
			done = done[:len(done)-1]
			continue
		}
		cur := path.Join(append(slices.Clip(done), part)...)
		fi, err := root.Lstat(cur)
		if errors.Is(err, os.ErrNotExist) && create {
			if err := root.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return "", err
			}
			fi, err = root.Lstat(cur)
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if links++; links > maxLinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links", cur)
			}
			target, err := root.Readlink(cur)
			if err != nil {
				return "", err
			}
			target = filepath.ToSlash(target)
			if path.IsAbs(target) || filepath.IsAbs(target) || filepath.VolumeName(target) != "" {
				return "", errLeavesVolume
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if len(todo) > 0 && !fi.IsDir() {
			return "", fmt.Errorf("%s is not a directory", cur)
		}
		done = append(done, part)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}
