package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/pty"
)

// ttyDrain is how long output still buffered in the terminal is read after
// the command ended (a background process it left may hold the terminal).
const ttyDrain = 500 * time.Millisecond

// ExecTTY is Exec on a terminal: the command runs on a new pseudo-terminal,
// as its stdin, stdout and stderr and its controlling terminal (a new
// session), in the container's environment as Exec. Input from stdin is
// typed on the terminal, its output (stdout and stderr are one stream on a
// terminal) goes to out, and resize sets its size (the first one received
// before the start is its initial size). Where the system has no
// pseudo-terminals it is Exec with pipes, out taking both streams.
func (i *Instance) ExecTTY(ctx context.Context, argv []string, stdin io.Reader, out io.Writer, resize <-chan pty.Size) (int, error) {
	master, slave, err := pty.Open()
	if errors.Is(err, pty.ErrUnsupported) {
		return i.Exec(ctx, argv, stdin, out, out)
	}
	if err != nil {
		return -1, err
	}
	defer master.Close()
	slaveOpen := true
	defer func() {
		if slaveOpen {
			slave.Close()
		}
	}()
	select {
	case <-i.done:
		return -1, errors.New("container is not running")
	default:
	}
	// The size the client had when it started, if it already arrived.
	select {
	case s, ok := <-resize:
		if ok {
			_ = pty.SetSize(master, s)
		}
	default:
	}
	cmd, err := i.command(argv, slave, slave, slave, false)
	if err != nil {
		return -1, err
	}
	onTerminal(cmd)
	if err := i.attachCgroup(cmd); err != nil {
		return -1, err
	}
	if err := i.startCmd(cmd, false); err != nil {
		return -1, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	i.afterStartPid(cmd.Process.Pid)
	// The command holds the terminal now: once it (and what it started)
	// closed it, reading the master ends.
	slave.Close()
	slaveOpen = false

	waitDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // ends with the command
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				killGroup(cmd.Process.Pid)
				return
			case s, ok := <-resize:
				if !ok {
					resize = nil
					continue
				}
				_ = pty.SetSize(master, s)
			case <-waitDone:
				return
			}
		}
	}()
	output := make(chan struct{})
	go func() { // ends when the terminal is closed or drained
		defer wg.Done()
		defer close(output)
		if out == nil {
			out = io.Discard
		}
		_, _ = io.Copy(out, master) // EIO once no process holds the terminal
	}()
	if stdin != nil {
		// Not joined: it ends when stdin ends (the caller closes it once
		// the exec returned) or with a write to the closed master.
		go func() { _, _ = io.Copy(master, stdin) }()
	}
	err = cmd.Wait()
	close(waitDone)
	select {
	case <-output:
	case <-time.After(ttyDrain):
	}
	_ = master.SetReadDeadline(time.Now())
	wg.Wait()
	return commandResult(err)
}

// terminal is the pseudo-terminal of a container started with Spec.TTY.
type terminal struct {
	master, slave *os.File
	output        chan struct{} // closed when the output copy ended
}

// newTerminal allocates a container's terminal; nil where there are none.
func newTerminal() (*terminal, error) {
	master, slave, err := pty.Open()
	if errors.Is(err, pty.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &terminal{master: master, slave: slave, output: make(chan struct{})}, nil
}

// run copies the terminal's output to out and stdin (if any) to it, once
// the container started (which holds the slave now).
func (t *terminal) run(stdin io.Reader, out io.Writer) {
	t.slave.Close()
	if out == nil {
		out = io.Discard
	}
	go func() { // ends with drain
		defer close(t.output)
		_, _ = io.Copy(out, t.master)
	}()
	if stdin != nil {
		// Not joined: it ends when stdin ends (the container's end
		// closes it) or with a write to the closed master.
		go func() { _, _ = io.Copy(t.master, stdin) }()
	}
}

// drain reads what the container's terminal still holds once the
// container ended, then closes it.
func (t *terminal) drain() {
	select {
	case <-t.output:
	case <-time.After(ttyDrain):
	}
	_ = t.master.SetReadDeadline(time.Now())
	<-t.output
	t.master.Close()
}

// Resize sets the size of the container's terminal (Spec.TTY); without one
// it does nothing.
func (i *Instance) Resize(s pty.Size) {
	if i.term != nil {
		_ = pty.SetSize(i.term.master, s)
	}
}
