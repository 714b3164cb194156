package process

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A user namespace is made by a process that exists only to hold it while
// the agent opens it: the agent's binary re-executed under this name, which
// waits for its stdin to close.
const usernsArg0 = "edgefabric-process-userns"

func runUserNSHolder() {
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// idMap is the mapping of a container whose uid and gid 0 are the host's
// base: UserNSSize ids.
func idMap(base uint32) []syscall.SysProcIDMap {
	return []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: UserNSSize}}
}

// newUserNS makes a user namespace mapping 0..UserNSSize-1 to base and
// returns it open; it lives as long as the file (or a mount idmapped with
// it).
func newUserNS(base uint32) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{usernsArg0}, Stdin: r,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: idMap(base), GidMappings: idMap(base),
		},
	}
	err = cmd.Start()
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("make a user namespace: %w", err)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user")
	w.Close()
	_ = cmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("open the user namespace: %w", err)
	}
	return f, nil
}

// probeUserNS tells whether containers can run in user namespaces here: the
// kernel makes them (user.max_user_namespaces is not 0, nothing refuses
// CLONE_NEWUSER) and the state directory's file system takes idmapped
// mounts, through which the container's root owns its root file system.
func probeUserNS(stateDir string, base uint32) error {
	if b, err := os.ReadFile("/proc/sys/user/max_user_namespaces"); err == nil && strings.TrimSpace(string(b)) == "0" {
		return errors.New("the kernel allows no user namespaces (sysctl user.max_user_namespaces is 0)")
	}
	ns, err := newUserNS(base)
	if err != nil {
		return err
	}
	defer ns.Close()
	fd, err := unix.OpenTree(unix.AT_FDCWD, stateDir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("idmapped mounts: open_tree %s: %w", stateDir, err)
	}
	defer unix.Close(fd)
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}); err != nil {
		return fmt.Errorf("idmapped mounts of %s: %w", stateDir, err)
	}
	return nil
}

// idmappedBind binds source (and the mounts below it) at target, the ids
// of its files shifted as userns maps them: a file the host sees owned by
// uid k is, through target, owned by the host's uid base+k, the
// container's uid k, and what the container makes as its uid k is k on
// disk.
func idmappedBind(source, target string, userns *os.File, readOnly bool) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if readOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("idmap (the file system may not support idmapped mounts): %w", err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// prepareUserNS builds the root of a container that runs in a user
// namespace: an overlay whose lower layer is an idmapped mount of the
// image, so that the files the image has as root's are the container
// root's, and whose upper layer holds the container's ids as the host's
// (its root directory is the container root's); without overlayfs, an
// idmapped read-only bind of the image and a tmpfs at /tmp.
func (i *Instance) prepareUserNS(userns *os.File) error {
	lower, upper, work, merged := filepath.Join(i.dir, "lower"), filepath.Join(i.dir, "upper"), filepath.Join(i.dir, "work"), filepath.Join(i.dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	root := int(i.idBase)
	if err := os.Chown(upper, root, root); err != nil {
		return err
	}
	i.root = merged
	if err := idmappedBind(i.spec.RootFS, lower, userns, true); err != nil {
		return fmt.Errorf("mount the image's root file system for the user namespace: %w", err)
	}
	i.mounts = append(i.mounts, lower)
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err == nil {
		i.mounts = append(i.mounts, merged)
		return nil
	}
	if err := idmappedBind(i.spec.RootFS, merged, userns, true); err != nil {
		return fmt.Errorf("mount root filesystem: %w", err)
	}
	i.mounts = append(i.mounts, merged)
	if tmp, err := mountPoint(merged, "/tmp", true, -1); err == nil {
		if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err == nil {
			i.mounts = append(i.mounts, tmp)
		}
	}
	return nil
}
