package fabrictest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/pty"
)

// Terminal is kubectl running on a pseudo-terminal the test holds, as in a
// user's terminal: kubectl sees a terminal on its stdin and stdout (so -t
// sends TTY=true and puts the terminal in raw mode). The test types on it
// and reads what kubectl shows.
type Terminal struct {
	t      testing.TB
	master *os.File
	cmd    *exec.Cmd
	done   chan struct{}
	read   chan struct{} // closed when the terminal's output ended

	mu  sync.Mutex
	out bytes.Buffer
}

// KubectlTerminal starts kubectl args on a new terminal of size s. It is
// killed at the test's end if still running.
func (f *Fabric) KubectlTerminal(s pty.Size, args ...string) *Terminal {
	f.t.Helper()
	master, slave, err := pty.Open()
	if errors.Is(err, pty.ErrUnsupported) {
		f.t.Skip(err)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	if err := pty.SetSize(master, s); err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(f.Env.KubectlPath, append([]string{"--kubeconfig", f.Env.Kubeconfig}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// Its own session with the terminal as its controlling terminal, as a
	// login shell would start it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		slave.Close()
		master.Close()
		f.t.Fatal(err)
	}
	slave.Close()
	term := &Terminal{t: f.t, master: master, cmd: cmd, done: make(chan struct{}), read: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(term.done)
	}()
	go func() {
		defer close(term.read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return // EIO: kubectl closed the terminal
			}
		}
	}()
	f.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-term.done
		_ = master.SetReadDeadline(time.Now())
		<-term.read
		master.Close()
	})
	return term
}

// Output is all the terminal showed so far.
func (t *Terminal) Output() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.String()
}

// Type types s on the terminal.
func (t *Terminal) Type(s string) {
	t.t.Helper()
	if _, err := io.WriteString(t.master, s); err != nil {
		t.t.Fatalf("type %q: %v", s, err)
	}
}

// WaitFor waits until the terminal shows want after what it showed at mark
// (an earlier len(Output())) and returns the new mark, just past want.
func (t *Terminal) WaitFor(mark int, want string, timeout time.Duration) int {
	t.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := t.Output()
		if k := strings.Index(out[min(mark, len(out)):], want); k >= 0 {
			return mark + k + len(want)
		}
		select {
		case <-t.done:
			// What kubectl wrote last may still be on its way.
			time.Sleep(100 * time.Millisecond)
			out = t.Output()
			if k := strings.Index(out[min(mark, len(out)):], want); k >= 0 {
				return mark + k + len(want)
			}
			t.t.Fatalf("kubectl ended (%v) and the terminal never showed %q; it showed %q", t.cmd.ProcessState, want, out[min(mark, len(out)):])
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.t.Fatalf("the terminal did not show %q within %s; it showed %q", want, timeout, out[min(mark, len(out)):])
		}
	}
}

// Wait waits for kubectl to end and returns its exit code.
func (t *Terminal) Wait(timeout time.Duration) int {
	t.t.Helper()
	select {
	case <-t.done:
		return t.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.t.Fatalf("kubectl did not end within %s; the terminal showed %q", timeout, t.Output())
		return -1
	}
}
