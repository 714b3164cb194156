package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// startCmd starts cmd, as command built it, confined: the container's main
// process (main) through the container's init, an exec'd one from a thread
// that has joined the container's namespaces and confinement.
func (i *Instance) startCmd(cmd *exec.Cmd, main bool) error {
	caps, err := capsOf(i.spec.Security)
	if err != nil {
		return err
	}
	if main {
		return i.startInit(cmd, caps)
	}
	return i.startJoined(cmd, caps)
}

// startInit starts the container's init (runInit) with the orders to run
// cmd, and returns once init has executed the program or failed to.
func (i *Instance) startInit(cmd *exec.Cmd, caps uint64) error {
	cfg := initConfig{
		Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir, Caps: caps,
		ReadOnlyRoot: i.spec.Security.ReadOnlyRootFS,
	}
	if cfg.Env == nil {
		cfg.Env = []string{}
	}
	attr := cmd.SysProcAttr
	if attr.Chroot != "" {
		cfg.Root = attr.Chroot
		attr.Chroot = ""
	}
	if c := attr.Credential; c != nil {
		cfg.SetUser, cfg.UID, cfg.GID = true, c.Uid, c.Gid
		attr.Credential = nil
	}
	configR, configW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer configW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		configR.Close()
		return err
	}
	defer statusR.Close()
	cmd.Path, cmd.Args, cmd.Env, cmd.Dir = "/proc/self/exe", []string{initArg0}, []string{}, ""
	cmd.ExtraFiles = []*os.File{configR, statusW} // descriptors 3 and 4
	if serr := i.r.onStarter(func() { err = cmd.Start() }); serr != nil {
		err = serr
	}
	configR.Close()
	statusW.Close()
	if err != nil {
		return fmt.Errorf("start the container's init: %w", err)
	}
	b, _ := json.Marshal(cfg)
	_, werr := configW.Write(b)
	configW.Close()
	msg, rerr := io.ReadAll(io.LimitReader(statusR, 4096))
	if len(msg) == 0 && werr == nil && rerr == nil {
		return i.openNamespaces(cmd.Process.Pid)
	}
	killGroup(cmd.Process.Pid)
	_ = cmd.Wait()
	cmd.Process = nil
	switch {
	case len(msg) > 0:
		return errors.New(string(msg))
	case werr != nil:
		return fmt.Errorf("configure the container's init: %w", werr)
	default:
		return fmt.Errorf("read the container's init status: %w", rerr)
	}
}

// openNamespaces keeps the mount and PID namespaces of the container's main
// process, which exec'd processes join.
func (i *Instance) openNamespaces(pid int) error {
	if !i.r.isolate {
		return nil
	}
	for _, ns := range []string{"mnt", "pid"} {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/" + ns)
		if errors.Is(err, os.ErrNotExist) {
			// It has already ended (its pid is not reused before it is
			// reaped): there is nothing to exec into.
			i.closeNamespaces()
			return nil
		}
		if err != nil {
			return fmt.Errorf("open the container's %s namespace: %w", ns, err)
		}
		i.ns = append(i.ns, f)
	}
	return nil
}

// startJoined starts cmd from a new thread that joins the container's mount
// and PID namespaces (isolated) and takes on its confinement, so that cmd
// inherits both; the thread is thrown away after. The process joins the
// container's cgroup once started: clone3, which starts a process inside a
// cgroup, is what the seccomp filter refuses.
func (i *Instance) startJoined(cmd *exec.Cmd, caps uint64) error {
	cmd.SysProcAttr.UseCgroupFD = false
	// The thread that starts it ends at once: no parent-death signal.
	cmd.SysProcAttr.Pdeathsig = 0
	var ns []int
	if i.r.isolate {
		if len(i.ns) != 2 {
			return errors.New("container has no namespaces to join")
		}
		ns = []int{int(i.ns[0].Fd()), int(i.ns[1].Fd())}
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, changed for good, ends with this
		// goroutine.
		runtime.LockOSThread()
		if ns != nil {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				errc <- fmt.Errorf("unshare the file system attributes: %w", err)
				return
			}
			if err := unix.Setns(ns[0], unix.CLONE_NEWNS); err != nil {
				errc <- fmt.Errorf("join the container's mount namespace: %w", err)
				return
			}
			if err := unix.Setns(ns[1], unix.CLONE_NEWPID); err != nil {
				errc <- fmt.Errorf("join the container's PID namespace: %w", err)
				return
			}
		}
		if err := confineThread(caps); err != nil {
			errc <- err
			return
		}
		errc <- cmd.Start()
	}()
	if err := <-errc; err != nil {
		return err
	}
	if i.cg != nil {
		if err := i.cg.addPID(cmd.Process.Pid); err != nil {
			killGroup(cmd.Process.Pid)
			_ = cmd.Wait()
			return fmt.Errorf("move into the container's cgroup: %w", err)
		}
	}
	return nil
}

// closeNamespaces releases what openNamespaces kept.
func (i *Instance) closeNamespaces() {
	for _, f := range i.ns {
		f.Close()
	}
	i.ns = nil
}
