package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A container's main process starts as the agent's own binary re-executed
// under this name: the container's init (see runInit). It reads its orders
// from descriptor 3 and reports a failure on descriptor 4, which closes
// without a word when it executes the container's program.
const initArg0 = "edgefabric-process-init"

const (
	initConfigFD = 3
	initStatusFD = 4
)

func init() {
	if len(os.Args) > 0 {
		switch os.Args[0] {
		case initArg0:
			runInit()
		case joinArg0:
			runJoin()
		case usernsArg0:
			runUserNSHolder()
		}
	}
	// Exec'd processes are started from threads that join a container's
	// namespaces and confinement and are then thrown away (startJoined).
	// Go cannot throw away the main thread, and /proc/self shows the main
	// thread's mount namespace: keeping the main goroutine on it keeps
	// every other goroutine off it.
	runtime.LockOSThread()
}

// initConfig is what the container's init is told to do.
type initConfig struct {
	// Root is the container's root (host path), which init makes the root
	// of its mount namespace; empty runs the program in the agent's view of
	// the file system (not isolated).
	Root string
	// ReadOnlyRoot mounts Root read-only.
	ReadOnlyRoot bool
	// Path is the program (in the container's view), Args its argv, Env
	// its environment and Dir its working directory.
	Path string
	Args []string
	Env  []string
	Dir  string
	// SetUser switches to UID and GID, with no supplementary groups. In a
	// user namespace it is always set: until it switches, init is the
	// device's root (unmapped) holding capabilities in the namespace only.
	SetUser  bool
	UID, GID uint32
	// Caps is the capability bounding set, by bit.
	Caps uint64
}

// runInit is the container's init: it finishes the container (private
// mounts, /proc, pivot into its root), confines itself (capabilities, user,
// no_new_privs, seccomp) and executes the program. It never returns.
func runInit() {
	runtime.LockOSThread()
	// Nothing in the container may open this process's executable (the
	// agent's binary) through /proc while it is not yet the container's
	// program.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	status := os.NewFile(initStatusFD, "status")
	fail := func(err error) {
		fmt.Fprint(status, err.Error())
		os.Exit(127)
	}
	unix.CloseOnExec(initStatusFD)
	cf := os.NewFile(initConfigFD, "config")
	var cfg initConfig
	b, err := io.ReadAll(io.LimitReader(cf, 1<<22))
	cf.Close()
	if err != nil {
		fail(fmt.Errorf("read the container's configuration: %w", err))
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		fail(fmt.Errorf("read the container's configuration: %w", err))
	}
	if cfg.Root != "" {
		if err := enterRoot(cfg.Root, cfg.ReadOnlyRoot); err != nil {
			fail(err)
		}
	}
	if err := os.Chdir(cfg.Dir); err != nil {
		fail(fmt.Errorf("working directory %s: %w", cfg.Dir, err))
	}
	if err := dropBounding(cfg.Caps); err != nil {
		fail(err)
	}
	if cfg.SetUser {
		if err := syscall.Setgroups(nil); err != nil {
			fail(fmt.Errorf("setgroups: %w", err))
		}
		if err := syscall.Setgid(int(cfg.GID)); err != nil {
			fail(fmt.Errorf("setgid %d: %w", cfg.GID, err))
		}
		if err := syscall.Setuid(int(cfg.UID)); err != nil {
			fail(fmt.Errorf("setuid %d: %w", cfg.UID, err))
		}
	}
	if err := clearInheritable(); err != nil {
		fail(err)
	}
	// A change of user clears the parent-death signal: set it again.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if err := confineSyscalls(); err != nil {
		fail(err)
	}
	err = syscall.Exec(cfg.Path, cfg.Args, cfg.Env)
	fail(fmt.Errorf("exec %s: %w", cfg.Path, err))
}

// enterRoot makes root the root of the (new, private) mount namespace, with
// a /proc of the container's PID namespace, and leaves the host's file
// system behind: pivot_root, then the old root unmounted, so that no chroot
// escape leads out of the container.
func enterRoot(root string, readOnly bool) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// The root, bound on itself, is a mount of this namespace: in a user
	// namespace the mounts it was given are locked, and pivot_root refuses
	// to make one of them the root.
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind the root file system: %w", err)
	}
	if err := mountProc(root); err != nil {
		return err
	}
	if readOnly {
		if err := remountReadOnly(root); err != nil {
			return fmt.Errorf("mount the root file system read-only: %w", err)
		}
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter the root file system: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount the host's root: %w", err)
	}
	return unix.Chdir("/")
}

// remountReadOnly makes the mount at target read-only, keeping its other
// flags: in a user namespace the flags a more privileged one set
// (nosuid, nodev, noexec, atime) are locked, and a remount that would clear
// one is refused.
func remountReadOnly(target string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	return unix.Mount("", target, "", flags, "")
}

// maskedProc are the paths of /proc that Docker hides (bound to /dev/null,
// or an empty read-only tmpfs for directories), readOnlyProc those it keeps
// read-only.
var (
	maskedProc = []string{
		"acpi", "asound", "interrupts", "kcore", "keys", "latency_stats", "sched_debug", "scsi",
		"timer_list", "timer_stats",
	}
	readOnlyProc = []string{"bus", "fs", "irq", "sys", "sysrq-trigger"}
)

// mountProc mounts the container's /proc (the PID namespace of this
// process) with Docker's masks; a device whose kernel refuses it runs the
// container without /proc.
func mountProc(root string) error {
	proc := filepath.Join(root, "proc")
	if fi, err := os.Lstat(proc); err != nil || !fi.IsDir() {
		return nil // prepare made it; the image replaced it with something else
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil
	}
	for _, p := range maskedProc {
		target := filepath.Join(proc, p)
		fi, err := os.Lstat(target)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", target, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		} else {
			err = unix.Mount("/dev/null", target, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask /proc/%s: %w", p, err)
		}
	}
	for _, p := range readOnlyProc {
		target := filepath.Join(proc, p)
		if _, err := os.Lstat(target); err != nil {
			continue
		}
		if err := unix.Mount(target, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind /proc/%s: %w", p, err)
		}
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount /proc/%s read-only: %w", p, err)
		}
	}
	return nil
}

// lastCap is the highest capability number the kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 && n < 64 {
			return n
		}
	}
	return unix.CAP_LAST_CAP
}

// dropBounding removes every capability outside keep from the calling
// thread's bounding set, so that no program it executes can hold one, and
// clears its ambient set. Without CAP_SETPCAP (an agent not running as root)
// there is nothing to drop: the thread holds no capabilities to give.
func dropBounding(keep uint64) error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if !hasCapability(unix.CAP_SETPCAP) {
		return nil
	}
	last := lastCap()
	for c := 0; c <= last; c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

func capabilities() ([2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	return data, err
}

func hasCapability(c int) bool {
	data, err := capabilities()
	return err == nil && data[c/32].Effective&(1<<uint(c%32)) != 0
}

// clearInheritable empties the calling thread's inheritable set: together
// with the bounding set, what a program executed as root may hold is then
// the bounding set and nothing else.
func clearInheritable() error {
	data, err := capabilities()
	if err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data[0].Inheritable == 0 && data[1].Inheritable == 0 {
		return nil
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// deniedSyscalls are refused with EPERM to every native container: Docker's
// default seccomp profile's refusals that matter to a device (kernel
// modules, kexec, mounts, namespaces, keyrings, bpf, tracing other
// processes, the clock, swap, reboot). Names a platform lacks are skipped.
var deniedSyscalls = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
	"finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "init_module",
	"ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
	"mount", "mount_setattr", "move_mount", "name_to_handle_at", "nfsservctl", "open_by_handle_at",
	"open_tree", "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace",
	"query_module", "quotactl", "quotactl_fd", "reboot", "request_key", "setns", "settimeofday",
	"stime", "swapoff", "swapon", "_sysctl", "sysfs", "syslog", "umount", "umount2", "unshare",
	"uselib", "userfaultfd", "ustat", "vm86", "vm86old",
}

// namespaceFlags are clone's flags that make new namespaces: refused, as
// unshare is, so that a container cannot make a user namespace in which it
// holds every capability.
var namespaceFlags = []uint64{
	unix.CLONE_NEWNS, unix.CLONE_NEWUTS, unix.CLONE_NEWIPC, unix.CLONE_NEWUSER, unix.CLONE_NEWPID,
	unix.CLONE_NEWNET, unix.CLONE_NEWCGROUP,
}

var (
	filterOnce sync.Once
	filter     seccomp.Filter
	filterErr  error
)

// seccompFilter builds the container's filter for this machine's
// architecture.
func seccompFilter() (seccomp.Filter, error) {
	filterOnce.Do(func() {
		info, err := arch.GetInfo("")
		if err != nil {
			filterErr = err
			return
		}
		has := func(n string) bool { _, ok := info.SyscallNames[n]; return ok }
		var names []string
		for _, n := range deniedSyscalls {
			if has(n) {
				names = append(names, n)
			}
		}
		var cond []seccomp.NameWithConditions
		for _, f := range namespaceFlags {
			cond = append(cond, seccomp.NameWithConditions{Name: "clone", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: f}}})
		}
		// A device node (character or block): S_IFCHR's bit is set in both.
		const sIFCHR = 0o020000
		if has("mknod") {
			cond = append(cond, seccomp.NameWithConditions{Name: "mknod", Conditions: seccomp.ArgumentConditions{{Argument: 1, Operation: seccomp.BitsSet, Value: sIFCHR}}})
		}
		cond = append(cond, seccomp.NameWithConditions{Name: "mknodat", Conditions: seccomp.ArgumentConditions{{Argument: 2, Operation: seccomp.BitsSet, Value: sIFCHR}}})
		groups := []seccomp.SyscallGroup{
			{Names: names, Action: seccomp.ActionErrno},
			{NamesWithCondtions: cond, Action: seccomp.ActionErrno},
		}
		// clone3 passes its flags in memory a filter cannot read: it is
		// "not implemented", and the C libraries fall back to clone.
		if has("clone3") {
			groups = append(groups, seccomp.SyscallGroup{Names: []string{"clone3"}, Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)})
		}
		filter = seccomp.Filter{Policy: seccomp.Policy{DefaultAction: seccomp.ActionAllow, Syscalls: groups}}
	})
	return filter, filterErr
}

// confineSyscalls sets no_new_privs on the calling thread and loads the
// container's seccomp filters: the deny list for this architecture and one
// that refuses (ENOSYS) every system call of another one (the 32-bit
// calls of a 64-bit kernel), which the deny list would not see.
func confineSyscalls() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	f, err := seccompFilter()
	if err != nil {
		return fmt.Errorf("seccomp filter: %w", err)
	}
	if err := seccomp.LoadFilter(f); err != nil {
		return fmt.Errorf("load the seccomp filter: %w", err)
	}
	if err := loadArchFilter(); err != nil {
		return fmt.Errorf("load the seccomp architecture filter: %w", err)
	}
	return nil
}

// loadArchFilter refuses system calls made with another architecture's
// calling convention than this one's.
func loadArchFilter() error {
	info, err := arch.GetInfo("")
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)},
		bpf.RetConstant{Val: uint32(seccomp.ActionAllow)},
	})
	if err != nil {
		return err
	}
	prog := make([]unix.SockFilter, len(raw))
	for k, r := range raw {
		prog[k] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, 1 /* SECCOMP_SET_MODE_FILTER */, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return errno
	}
	runtime.KeepAlive(prog)
	return nil
}

// confineThread confines the calling (locked, throw-away) thread as a
// container's process is confined, so that a process it starts inherits
// it: bounding set caps, no inheritable or ambient capabilities,
// no_new_privs, the seccomp filters.
func confineThread(caps uint64) error {
	if err := dropBounding(caps); err != nil {
		return err
	}
	if err := clearInheritable(); err != nil {
		return err
	}
	return confineSyscalls()
}

// capsOf is the bounding set of a container with sec.
func capsOf(sec Security) (uint64, error) {
	names, err := Capabilities(sec)
	if err != nil {
		return 0, err
	}
	return capabilityMask(names), nil
}
