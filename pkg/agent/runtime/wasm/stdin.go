package wasm

import (
	"errors"
	"io"
	"sync"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// pollStdin is a module's standard input that poll_oneoff can wait on.
//
// wazero asks a stdin reader whether it has data with Poll, and takes one
// that cannot say for ready at once: a module polling an idle stdin with a
// timeout (poll(2) on fd 0 and a timer, as an interactive program does) is
// told it can read, reads, and blocks there, past its timeout, until input
// comes. pollStdin answers Poll truthfully: the first Poll that finds no
// data starts one read of the underlying reader in a goroutine and waits for
// it up to the timeout; what that read returns is what the module's next
// Read gets. A module that only reads is read from directly, with no
// goroutine. A read in flight when the instance ends goes on until the
// reader returns (as a module's own blocked read would: the caller closes a
// blocking Spec.Stdin to end it, see Instance.Stop).
type pollStdin struct {
	r    io.Reader
	stop <-chan struct{} // closed by Stop

	mu      sync.Mutex
	buf     []byte        // read ahead, not yet taken
	err     error         // the read ahead's error, after buf
	pending chan struct{} // non-nil while a read ahead runs; closed when it ends
}

var (
	_ experimentalsys.Pollable = (*pollStdin)(nil)
	_ io.Reader                = (*pollStdin)(nil)
)

// readAheadSize is the size of the one read a Poll starts.
const readAheadSize = 32 << 10

// errStdinStopped ends a Read waiting for a read ahead when the instance is
// stopped.
var errStdinStopped = errors.New("instance stopped")

func newPollStdin(r io.Reader, stop <-chan struct{}) *pollStdin {
	return &pollStdin{r: r, stop: stop}
}

// IsTerminal passes on whether the underlying reader is a terminal's (see
// hack/wazero/0004-terminal-stdio.patch).
func (s *pollStdin) IsTerminal() bool {
	t, ok := s.r.(interface{ IsTerminal() bool })
	return ok && t.IsTerminal()
}

// Read implements io.Reader.
func (s *pollStdin) Read(p []byte) (int, error) {
	s.mu.Lock()
	for {
		if len(s.buf) > 0 {
			n := copy(p, s.buf)
			s.buf = s.buf[n:]
			s.mu.Unlock()
			return n, nil
		}
		if s.err != nil {
			err := s.err
			s.err = nil
			s.mu.Unlock()
			return 0, err
		}
		pending := s.pending
		s.mu.Unlock()
		if pending == nil {
			return s.r.Read(p)
		}
		select {
		case <-pending:
		case <-s.stop:
			return 0, errStdinStopped
		}
		s.mu.Lock()
	}
}

// Poll implements experimentalsys.Pollable: whether a Read would return at
// once, waiting up to timeoutMillis for it (negative: until it would).
func (s *pollStdin) Poll(flag experimentalsys.Pflag, timeoutMillis int32) (bool, experimentalsys.Errno) {
	if flag != experimentalsys.POLLIN {
		return false, experimentalsys.ENOTSUP
	}
	s.mu.Lock()
	if len(s.buf) > 0 || s.err != nil {
		s.mu.Unlock()
		return true, 0
	}
	if s.pending == nil {
		s.pending = make(chan struct{})
		go s.readAhead(s.pending)
	}
	pending := s.pending
	s.mu.Unlock()

	var timeout <-chan time.Time
	switch {
	case timeoutMillis == 0:
		select {
		case <-pending:
			return true, 0
		default:
			return false, 0
		}
	case timeoutMillis > 0:
		t := time.NewTimer(time.Duration(timeoutMillis) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-pending:
		return true, 0
	case <-timeout:
		return false, 0
	case <-s.stop:
		return false, 0
	}
}

// readAhead is the goroutine of one read ahead, which done marks.
func (s *pollStdin) readAhead(done chan struct{}) {
	b := make([]byte, readAheadSize)
	n, err := s.r.Read(b)
	s.mu.Lock()
	s.buf, s.err = b[:n], err
	s.pending = nil
	close(done)
	s.mu.Unlock()
}
