package process

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// canIsolate reports whether containers can get their own root and
// namespaces: root on Linux.
func canIsolate() bool { return os.Geteuid() == 0 }

// prepare builds the container's root: an overlay of the image (or a
// read-only bind of it where overlayfs is missing) with /dev and the volumes
// mounted. Not isolated, the root is the image directory itself.
func (i *Instance) prepare() error {
	if !i.r.isolate {
		i.root = i.spec.RootFS
		return nil
	}
	if err := clearStale(i.dir); err != nil {
		return err
	}
	var userns *os.File
	if i.r.userns {
		base, k, err := i.r.takeRange()
		if err != nil {
			return err
		}
		i.idBase, i.rangeIdx = base, k
		if userns, err = i.r.userNS(k, base); err != nil {
			return err
		}
		if err := i.prepareUserNS(userns); err != nil {
			return err
		}
	} else if err := i.prepareRoot(); err != nil {
		return err
	}
	merged := i.root
	if err := i.mountDev(merged); err != nil {
		return err
	}
	// Where the container's init mounts its /proc; an image with something
	// else there runs without one.
	_, _ = mountPoint(merged, "/proc", true, i.owner())
	// Name resolution as on the device: its resolv.conf and hosts, read-only.
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		target, err := mountPoint(merged, f, false, i.owner())
		if err != nil {
			continue // the image has something odd there: leave it
		}
		if err := unix.Mount(f, target, "", unix.MS_BIND, ""); err != nil {
			continue
		}
		i.mounts = append(i.mounts, target)
		_ = unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}
	for _, m := range i.spec.Mounts {
		source := m.Source
		if m.Pinned != "" {
			source = m.Pinned
		}
		fi, err := os.Stat(source)
		if err != nil {
			return fmt.Errorf("volume %s: %w", m.Name, err)
		}
		target, err := mountPoint(merged, m.Target, fi.IsDir(), i.owner())
		if err != nil {
			return fmt.Errorf("volume %s at %s: %w", m.Name, m.Target, err)
		}
		if userns != nil {
			// Its files as the container's ids, and on disk what the
			// container's ids are inside: the same for every container
			// of the pod, whatever its range.
			if err := idmappedBind(source, target, userns, m.ReadOnly); err != nil {
				return fmt.Errorf("mount volume %s at %s: %w", m.Name, m.Target, err)
			}
			i.mounts = append(i.mounts, target)
			continue
		}
		if err := unix.Mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount volume %s at %s: %w", m.Name, m.Target, err)
		}
		i.mounts = append(i.mounts, target)
		if m.ReadOnly {
			if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("mount volume %s read-only: %w", m.Name, err)
			}
		}
	}
	return nil
}

// userNS returns a user namespace of range k (first id base) for the
// idmapped mounts of its container: the one made for the range's first
// container, kept while the runtime runs (making one costs a process).
func (r *Runtime) userNS(k int, base uint32) (*os.File, error) {
	r.mu.Lock()
	f := r.usernsOf[k]
	r.mu.Unlock()
	if f != nil {
		return f, nil
	}
	f, err := newUserNS(base)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		f.Close()
		return nil, errors.New("process runtime is closed")
	}
	if r.usernsOf == nil {
		r.usernsOf = map[int]*os.File{}
	}
	r.usernsOf[k] = f
	return f, nil
}

// prepareRoot builds the root of a container without a user namespace: an
// overlay of the image, or a read-only bind of it and a tmpfs at /tmp.
func (i *Instance) prepareRoot() error {
	upper, work, merged := filepath.Join(i.dir, "upper"), filepath.Join(i.dir, "work"), filepath.Join(i.dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	i.root = merged
	opts := "lowerdir=" + i.spec.RootFS + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		// No overlayfs: the image read-only, with a writable /tmp.
		if err := unix.Mount(i.spec.RootFS, merged, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount root filesystem: %w", err)
		}
		i.mounts = append(i.mounts, merged)
		if err := unix.Mount("", merged, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("mount root filesystem read-only: %w", err)
		}
		if tmp, err := mountPoint(merged, "/tmp", true, -1); err == nil {
			if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err == nil {
				i.mounts = append(i.mounts, tmp)
			}
		}
	} else {
		i.mounts = append(i.mounts, merged)
	}
	return nil
}

// mountDev gives the container a small /dev: a tmpfs with null, zero, full,
// random, urandom and tty bound from the host, and /dev/shm.
func (i *Instance) mountDev(root string) error {
	dev, err := mountPoint(root, "/dev", true, i.owner())
	if err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	i.mounts = append(i.mounts, dev)
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		target := filepath.Join(dev, name)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			continue
		}
		f.Close()
		if err := unix.Mount("/dev/"+name, target, "", unix.MS_BIND, ""); err == nil {
			i.mounts = append(i.mounts, target)
		}
	}
	shm := filepath.Join(dev, "shm")
	_ = os.MkdirAll(shm, 0o1777)
	if owner := i.owner(); owner >= 0 {
		// The container's root owns its /dev, as it would have mounted it.
		_ = os.Chown(dev, owner, owner)
		_ = os.Chown(shm, owner, owner)
	}
	return nil
}

// owner is the host uid (and gid) of the container's root in its user
// namespace, or -1 without one.
func (i *Instance) owner() int {
	if i.idBase == 0 {
		return -1
	}
	return int(i.idBase)
}

// mountPoint returns the host path of target inside root, creating it (a
// directory, or an empty file when dir is false) and its parents as needed.
// It refuses a target whose path crosses a symbolic link of the image, so
// that an image cannot redirect a mount outside its root. What it creates
// belongs to owner (uid and gid), unless owner is -1.
func mountPoint(root, target string, dir bool, owner int) (string, error) {
	target = path.Clean("/" + target)
	cur := root
	parts := strings.Split(strings.TrimPrefix(target, "/"), "/")
	for k, part := range parts {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		last := k == len(parts)-1
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if last && !dir {
				f, err := os.OpenFile(cur, os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					return "", err
				}
				f.Close()
			} else if err := os.Mkdir(cur, 0o755); err != nil {
				return "", err
			}
			if owner >= 0 {
				if err := os.Lchown(cur, owner, owner); err != nil {
					return "", err
				}
			}
		case err != nil:
			return "", err
		case fi.Mode()&os.ModeSymlink != 0:
			return "", fmt.Errorf("%s is a symbolic link in the image", path.Join("/", path.Join(parts[:k+1]...)))
		case !last && !fi.IsDir():
			return "", fmt.Errorf("%s is not a directory in the image", path.Join("/", path.Join(parts[:k+1]...)))
		}
	}
	return cur, nil
}

// command builds the process for argv: the container's main process (main)
// or one exec'd into it.
func (i *Instance) command(argv []string, stdin io.Reader, stdout, stderr io.Writer, main bool) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	exe, err := lookPath(i.root, argv[0], i.spec.Env)
	if err != nil {
		return nil, err
	}
	wd := i.spec.WorkingDir
	if wd == "" {
		wd = "/"
	}
	cmd := &exec.Cmd{Args: argv, Env: i.spec.Env, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if i.r.isolate {
		cmd.Path, cmd.Dir = exe, wd
		attr.Chroot = i.root
		if u := i.spec.User; u != nil && (u.UID != 0 || u.GID != 0) {
			attr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}
		}
		if main {
			attr.Cloneflags = unix.CLONE_NEWNS | unix.CLONE_NEWPID
			if i.idBase != 0 {
				// The container's ids 0..UserNSSize-1 are its range
				// of the host's; its init, root in the namespace,
				// sets up its mounts there.
				attr.Cloneflags |= unix.CLONE_NEWUSER
				attr.UidMappings, attr.GidMappings = idMap(i.idBase), idMap(i.idBase)
				attr.GidMappingsEnableSetgroups = true
			}
		} else {
			// Exec'd processes join the container's mount namespace,
			// whose root is the container's (see startCmd).
			attr.Chroot = ""
		}
	} else {
		cmd.Path = filepath.Join(i.root, exe)
		cmd.Dir = filepath.Join(i.root, wd)
		env := append([]string{}, i.spec.Env...)
		env = append(env, "EDGEFABRIC_ROOT="+i.root)
		for _, m := range i.spec.Mounts {
			env = append(env, volumeEnv(m.Name)+"="+m.Source)
		}
		cmd.Env = env
	}
	if _, err := os.Stat(filepath.Join(i.root, wd)); err != nil {
		return nil, fmt.Errorf("working directory %s: not in the image", wd)
	}
	cmd.SysProcAttr = attr
	return cmd, nil
}

// attachCgroup creates the container's cgroup (once) and, with cgroup v2,
// has the process start inside it.
func (i *Instance) attachCgroup(cmd *exec.Cmd) error {
	if i.r.cgroups == nil || (i.spec.MemoryLimitBytes <= 0 && i.spec.CPULimitMillis <= 0) {
		return nil
	}
	if i.cg == nil {
		cg, err := i.r.cgroups.create(i.r.cgroupPrefix+i.spec.ID, i.spec.MemoryLimitBytes, i.spec.CPULimitMillis)
		if err != nil {
			return fmt.Errorf("create cgroup: %w", err)
		}
		i.cg = cg
	}
	if fd, ok := i.cg.fd(); ok {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	return nil
}

func (i *Instance) afterStart() { i.afterStartPid(i.cmd.Process.Pid) }

// afterStartPid moves a started process into the cgroup where the process
// could not start inside it (cgroup v1).
func (i *Instance) afterStartPid(pid int) {
	if i.cg == nil {
		return
	}
	if _, ok := i.cg.fd(); ok {
		return
	}
	if err := i.cg.addPID(pid); err != nil {
		i.r.log.Warn("move container into its cgroup", "container", i.spec.ID, "err", err)
	}
}

func (i *Instance) signalTerm() {
	pid := i.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	_ = syscall.Kill(pid, syscall.SIGTERM)
}

func (i *Instance) kill() { killGroup(i.cmd.Process.Pid) }

func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// cleanup unmounts what prepare mounted and removes the scratch directory
// and cgroup. The directory is kept if an unmount fails: removing it would
// reach into a volume still bound below it.
func (i *Instance) cleanup() {
	i.closeNamespaces()
	clean := true
	for k := len(i.mounts) - 1; k >= 0; k-- {
		if err := unix.Unmount(i.mounts[k], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			i.r.log.Warn("unmount", "path", i.mounts[k], "err", err)
			clean = false
		}
	}
	i.mounts = nil
	if clean && i.r.isolate {
		_ = os.RemoveAll(i.dir)
	}
	if i.cg != nil {
		i.cg.remove()
	}
	if i.rangeIdx >= 0 {
		i.r.releaseRange(i.rangeIdx)
		i.rangeIdx = -1
	}
}

func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func signalOf(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return unix.SignalName(ws.Signal())
	}
	return ""
}

// treeRSS is the resident memory of pid and its descendants, in bytes.
func treeRSS(pid int) int64 {
	var total int64
	seen := map[int]bool{}
	queue := []int{pid}
	for len(queue) > 0 && len(seen) < 4096 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		total += rssOf(p)
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(p) + "/task")
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					queue = append(queue, c)
				}
			}
		}
	}
	return total
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// clearStale removes what a container left in dir when the agent did not
// end it (a crash): its mounts first, deepest first, so that removing the
// directory can never reach into a volume still bound below it.
func clearStale(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
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
		p := unescapeMount(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount stale %s: %w", p, err)
		}
	}
	return os.RemoveAll(dir)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out = append(out, byte(n))
				i += 3
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}

// onTerminal makes a command whose stdin is a terminal run in a new session
// with that terminal as its controlling terminal (it then gets ^C as SIGINT
// and SIGWINCH on resize). The session is also its process group, which
// killGroup ends.
func onTerminal(cmd *exec.Cmd) {
	cmd.SysProcAttr.Setpgid = false // a session leader cannot change its group
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0 // the child's stdin
}
