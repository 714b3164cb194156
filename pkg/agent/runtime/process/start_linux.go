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
	if i.idBase != 0 {
		// Init starts as the device's root, unmapped in the namespace,
		// with its capabilities there as ambient ones (it may thus
		// reach the container's root through the agent's directories,
		// which only the device's root may enter), and switches to the
		// container's user once in its root.
		cfg.SetUser = true
		attr.AmbientCaps = initAmbientCaps()
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
	if err := configureInit(cmd, cfg, configW, statusR); err != nil {
		return err
	}
	return i.openNamespaces(cmd.Process.Pid)
}

// configureInit sends a started init its orders and waits until it has
// executed the program (its status pipe closes empty) or failed to; then
// it ends and reaps it.
func configureInit(cmd *exec.Cmd, cfg initConfig, configW, statusR *os.File) error {
	b, _ := json.Marshal(cfg)
	_, werr := configW.Write(b)
	configW.Close()
	msg, rerr := io.ReadAll(io.LimitReader(statusR, 4096))
	if len(msg) == 0 && werr == nil && rerr == nil {
		return nil
	}
	killGroup(cmd.Process.Pid)
	_ = cmd.Wait()
	cmd.Process = nil
	switch {
	case len(msg) > 0:
		return joinError(string(msg))
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
	names := []string{"mnt", "pid"}
	if i.idBase != 0 {
		names = append(names, "user")
	}
	for _, ns := range names {
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
	if i.idBase != 0 {
		return i.startJoiner(cmd, caps)
	}
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

// startJoiner starts cmd in a container with a user namespace, through the
// joiner (runJoin), and returns once the container's init it starts has
// executed cmd or failed to. The process the caller waits for is the
// joiner, which ends as cmd does; cmd's process group (or session) is the
// joiner's.
func (i *Instance) startJoiner(cmd *exec.Cmd, caps uint64) error {
	if len(i.ns) != 3 {
		return errors.New("container has no namespaces to join")
	}
	attr := cmd.SysProcAttr
	cfg := initConfig{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir, Caps: caps, SetUser: true}
	if cfg.Env == nil {
		cfg.Env = []string{}
	}
	if c := attr.Credential; c != nil {
		cfg.UID, cfg.GID = c.Uid, c.Gid
		attr.Credential = nil
	}
	var files []*os.File // the joiner's ends, closed once it started
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
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
	syncR, syncW, err := os.Pipe()
	if err != nil {
		configR.Close()
		statusW.Close()
		return err
	}
	defer syncW.Close()
	files = []*os.File{configR, statusW, syncR}
	cmd.Path, cmd.Args, cmd.Env, cmd.Dir = "/proc/self/exe", []string{joinArg0}, []string{}, ""
	if attr.Setsid {
		cmd.Args = append(cmd.Args, "tty")
	}
	// Descriptors 3 to 8.
	cmd.ExtraFiles = []*os.File{configR, statusW, i.ns[2], i.ns[0], i.ns[1], syncR}
	if serr := i.r.onStarter(func() { err = cmd.Start() }); serr != nil {
		err = serr
	}
	for _, f := range files {
		f.Close()
	}
	files = nil
	if err != nil {
		return fmt.Errorf("start the container's joiner: %w", err)
	}
	if i.cg != nil && !attr.UseCgroupFD {
		if err := i.cg.addPID(cmd.Process.Pid); err != nil {
			killGroup(cmd.Process.Pid)
			_ = cmd.Wait()
			cmd.Process = nil
			return fmt.Errorf("move into the container's cgroup: %w", err)
		}
	}
	syncW.Close()
	return configureInit(cmd, cfg, configW, statusR)
}
