package main

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// preopenedListener is the first listening socket the agent preopened for
// the pod's containerPorts: the first socket among the descriptors from 3 on
// (the agent puts the sockets first, at 3, 4, ..., and the pod's volumes
// after them; other runtimes may not).
// Without one it fails: net.Listen is an in-memory stand-in on wasip1 that
// nothing outside the module could connect to.
func preopenedListener() (net.Listener, bool, error) {
	for fd := 3; fd < 64; fd++ {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			if errors.Is(err, syscall.EBADF) {
				break // past the last preopened descriptor
			}
			continue
		}
		if st.Filetype != syscall.FILETYPE_SOCKET_STREAM {
			continue
		}
		// Non-blocking first, so that os.NewFile hands the socket to Go's
		// poller: a blocking accept would stall every goroutine of a wasip1
		// program (it has one thread) until the next connection.
		_ = syscall.SetNonblock(fd, true)
		ln, err := net.FileListener(os.NewFile(uintptr(fd), "listener"))
		return ln, true, err
	}
	return nil, true, errors.New("no preopened listening socket: give the container a containerPort")
}
