package process

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A process exec'd into a container with a user namespace is started by the
// agent's binary re-executed under this name: the joiner (runJoin). A Go
// process has several threads from its start, and the kernel lets only a
// single-threaded one join a user namespace; the joiner forks a copy of
// itself that joins the container's mount and user namespaces with raw
// system calls and executes the container's init in them (runInit), which
// confines itself and executes the command. The joiner waits for it and
// exits as it does.
const joinArg0 = "edgefabric-process-join"

// The joiner's descriptors besides the init's (initConfigFD, initStatusFD),
// which it leaves to the init it starts.
const (
	joinUserFD = 5 // the container's user namespace
	joinMntFD  = 6 // its mount namespace
	joinPIDFD  = 7 // its PID namespace
	joinSyncFD = 8 // closed by the agent once the joiner is in the cgroup
)

// runJoin is the joiner. It never returns.
func runJoin() {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	status := os.NewFile(initStatusFD, "status")
	fail := func(err error) {
		fmt.Fprint(status, err.Error())
		os.Exit(127)
	}
	for _, fd := range []int{joinUserFD, joinMntFD, joinPIDFD, joinSyncFD} {
		unix.CloseOnExec(fd)
	}
	sync := os.NewFile(joinSyncFD, "sync")
	_, _ = io.Copy(io.Discard, sync)
	sync.Close()
	// The command gets its terminal's signals (^C, ^Z, a hang-up) itself;
	// the joiner outlives them to report how it ended. Caught, not
	// ignored: the command's init starts with the default handlers.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP,
		syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	// This thread's children are born in the container's PID namespace.
	if err := unix.Setns(joinPIDFD, unix.CLONE_NEWPID); err != nil {
		fail(fmt.Errorf("join the container's PID namespace: %w", err))
	}
	// The binary, opened here where the device's file system is seen, and
	// executed by descriptor in the container's.
	exe, err := unix.Open("/proc/self/exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fail(fmt.Errorf("open the agent's binary: %w", err))
	}
	empty, _ := syscall.BytePtrFromString("")
	arg0, _ := syscall.BytePtrFromString(initArg0)
	argv := []*byte{arg0, nil}
	envv := []*byte{nil}
	msgs := joinMessages{
		mnt:  "join the container's mount namespace: errno ",
		user: "join the container's user namespace: errno ",
		caps: "keep the capabilities init needs: errno ",
		tty:  "take the terminal: errno ",
		exec: "start the container's init: errno ",
	}
	// The child, once in the user namespace, is the device's root there
	// (unmapped): it keeps its capabilities there as ambient ones
	// (initAmbientCaps), and no process of the container can reach into
	// it (it is not the container's uid; init makes itself undumpable
	// before it switches).
	full := uint64(1)<<(uint(lastCap())+1) - 1
	caps := joinCaps{hdr: unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}}
	var inheritable uint64
	for _, c := range initAmbientCaps() {
		caps.ambient[caps.n] = c
		caps.n++
		inheritable |= 1 << c
	}
	for k := range caps.data {
		caps.data[k] = unix.CapUserData{Effective: uint32(full >> (32 * k)), Permitted: uint32(full >> (32 * k)), Inheritable: uint32(inheritable >> (32 * k))}
	}
	// On a terminal the command leads its session, as it would started
	// by itself: the joiner's child starts a session and takes the
	// terminal from the joiner's.
	var tty uintptr
	if len(os.Args) > 1 && os.Args[1] == "tty" {
		tty = 1
	}
	pid, errno := forkJoin(joinUserFD, joinMntFD, uintptr(exe), initStatusFD, empty, &argv[0], &envv[0], &msgs, &caps, tty)
	runtime.KeepAlive(&caps)
	runtime.KeepAlive(argv)
	runtime.KeepAlive(envv)
	if errno != 0 {
		fail(fmt.Errorf("fork: %w", errno))
	}
	// The init reads its orders and reports on these; the joiner keeps
	// neither open, so that the agent sees them close.
	unix.Close(initConfigFD)
	status.Close()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			os.Exit(127)
		}
		if ws.Exited() || ws.Signaled() {
			break
		}
	}
	if ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(ws.ExitStatus())
}

// joinMessages are what the joiner's child reports on failing a step,
// before the errno.
type joinMessages struct{ tty, mnt, user, caps, exec string }

// joinCaps are the child's capabilities in the user namespace: capset's
// arguments and the ambient ones to raise.
type joinCaps struct {
	hdr     unix.CapUserHeader
	data    [2]unix.CapUserData
	ambient [64]uintptr
	n       int // of ambient
}

// initAmbientCaps are the capabilities the init of a container with a user
// namespace holds there, as the device's root (unmapped), until it confines
// itself and switches to the container's user: all of them (in the
// namespace only), as ambient capabilities, which an exec keeps. Init
// needs some to mount its /proc, pivot into its root and switch users, and
// all for its program to get the container's set: with no_new_privs an
// exec grants no capability the process did not hold.
func initAmbientCaps() []uintptr {
	var caps []uintptr
	for c := 0; c <= lastCap(); c++ {
		caps = append(caps, uintptr(c))
	}
	return caps
}

// forkJoin forks the calling process; the child starts a session on the
// terminal of its stdin if tty is not 0, joins the mount namespace
// mntFD and the user namespace userFD, sets its capabilities as caps says
// and executes exeFD with argv and envv. It
// returns the child's pid to the parent. The child is a copy of a
// multi-threaded Go process with one thread: it may only make raw system
// calls and must not grow its stack; on failure it writes the step's
// message and errno to statusFD and exits with 127.
//
//go:norace
//go:nosplit
func forkJoin(userFD, mntFD, exeFD, statusFD uintptr, empty *byte, argv, envv **byte, msgs *joinMessages, caps *joinCaps, tty uintptr) (int, syscall.Errno) {
	var r1 uintptr
	var e syscall.Errno
	if runtime.GOARCH == "s390x" {
		r1, _, e = syscall.RawSyscall6(syscall.SYS_CLONE, 0, uintptr(syscall.SIGCHLD), 0, 0, 0, 0)
	} else {
		r1, _, e = syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	}
	if e != 0 {
		return 0, e
	}
	if r1 != 0 {
		return int(r1), 0
	}
	// The child.
	_, _, _ = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0, 0)
	msg := msgs.tty
	if tty != 0 {
		_, _, e = syscall.RawSyscall6(syscall.SYS_SETSID, 0, 0, 0, 0, 0, 0)
		if e == 0 {
			_, _, e = syscall.RawSyscall6(syscall.SYS_IOCTL, 0, syscall.TIOCSCTTY, 1, 0, 0, 0)
		}
	}
	if e == 0 {
		msg = msgs.mnt
		_, _, e = syscall.RawSyscall6(unix.SYS_SETNS, mntFD, unix.CLONE_NEWNS, 0, 0, 0, 0)
	}
	if e == 0 {
		msg = msgs.user
		_, _, e = syscall.RawSyscall6(unix.SYS_SETNS, userFD, unix.CLONE_NEWUSER, 0, 0, 0, 0)
	}
	if e == 0 {
		msg = msgs.caps
		_, _, e = syscall.RawSyscall6(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&caps.hdr)), uintptr(unsafe.Pointer(&caps.data[0])), 0, 0, 0, 0)
		for k := 0; e == 0 && k < caps.n; k++ {
			_, _, e = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, caps.ambient[k], 0, 0, 0)
		}
	}
	if e == 0 {
		msg = msgs.exec
		_, _, e = syscall.RawSyscall6(unix.SYS_EXECVEAT, exeFD, uintptr(unsafe.Pointer(empty)),
			uintptr(unsafe.Pointer(argv)), uintptr(unsafe.Pointer(envv)), unix.AT_EMPTY_PATH, 0)
	}
	var digits [20]byte
	k := len(digits)
	for n := uintptr(e); ; n /= 10 {
		k--
		digits[k] = byte('0' + n%10)
		if n < 10 || k == 0 {
			break
		}
	}
	_, _, _ = syscall.RawSyscall6(syscall.SYS_WRITE, statusFD, uintptr(unsafe.Pointer(unsafe.StringData(msg))), uintptr(len(msg)), 0, 0, 0)
	_, _, _ = syscall.RawSyscall6(syscall.SYS_WRITE, statusFD, uintptr(unsafe.Pointer(&digits[k])), uintptr(len(digits)-k), 0, 0, 0)
	for {
		_, _, _ = syscall.RawSyscall6(syscall.SYS_EXIT_GROUP, 127, 0, 0, 0, 0, 0)
	}
}

// joinError turns the joiner's report into an error, its trailing
// "errno N" into the errno's text.
func joinError(msg string) error {
	if head, n, ok := strings.Cut(msg, "errno "); ok {
		if e, err := strconv.Atoi(n); err == nil && e > 0 && e < 4096 {
			return fmt.Errorf("%s%w", head, syscall.Errno(e))
		}
	}
	return fmt.Errorf("%s", msg)
}
