package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fdPoller waits with ppoll(2) on the sockets and on an eventfd that wake
// makes readable for good.
type fdPoller struct {
	fds []unix.PollFd // reused by wait, which only the instance calls

	mu     sync.Mutex
	efd    int
	closed bool
}

var _ poller = (*fdPoller)(nil)

func newPoller() (poller, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &fdPoller{efd: efd}, nil
}

func (p *fdPoller) wait(subs []pollSub, timeout time.Duration) (bool, error) {
	fds := append(p.fds[:0], unix.PollFd{Fd: int32(p.efd), Events: unix.POLLIN})
	for _, s := range subs {
		ev := int16(unix.POLLIN)
		if s.write {
			ev = unix.POLLOUT
		}
		fds = append(fds, unix.PollFd{Fd: int32(s.host), Events: ev})
	}
	p.fds = fds
	deadline := time.Now().Add(timeout)
	for {
		var ts *unix.Timespec
		if timeout >= 0 {
			t := unix.NsecToTimespec(max(time.Until(deadline), 0).Nanoseconds())
			ts = &t
		}
		_, err := unix.Ppoll(fds, ts, nil)
		if errors.Is(err, unix.EINTR) {
			continue // a signal (Go's preemption): wait for the rest
		}
		if err != nil {
			return false, fmt.Errorf("ppoll: %w", err)
		}
		break
	}
	for k := range subs {
		r := fds[k+1].Revents
		subs[k].ready = r != 0
		subs[k].hangup = r&unix.POLLHUP != 0
		subs[k].badFD = r&unix.POLLNVAL != 0
	}
	return fds[0].Revents != 0, nil
}

func (p *fdPoller) wake() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(p.efd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		// The counter is full (it cannot be) or the fd is gone: nothing
		// to do but let the module end at its next call.
		return
	}
}

func (p *fdPoller) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return unix.Close(p.efd)
}
