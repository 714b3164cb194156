package ldisc

import (
	"errors"
	"io"
	"sync"
)

// Session is a Line between a client (its raw keystrokes and its terminal)
// and a command (cooked input and output).
type Session struct {
	in     io.Reader
	term   io.Writer
	onIntr func()
	stdinR *io.PipeReader
	stdinW *io.PipeWriter
	mu     sync.Mutex // term's writes
	intrMu sync.Mutex
	intr   bool
}

// New makes a session reading keystrokes from in (nil: none) and writing
// echo and the command's output to term (nil: discarded). onInterrupt (may
// be nil) is called once when ^C is typed; it should end the command.
func New(in io.Reader, term io.Writer, onInterrupt func()) *Session {
	if term == nil {
		term = io.Discard
	}
	s := &Session{in: in, term: term, onIntr: onInterrupt}
	s.stdinR, s.stdinW = io.Pipe()
	return s
}

// Stdin is the command's input: the lines typed. It says it is a terminal
// (IsTerminal), as Stdout does: the agent's WASM runtime then shows the
// module character devices, so that isatty is true.
func (s *Session) Stdin() io.Reader { return terminalInput{s.stdinR} }

type terminalInput struct{ *io.PipeReader }

// IsTerminal reports that the input is a terminal's.
func (terminalInput) IsTerminal() bool { return true }

// Stdout is the command's output (stdout and stderr: one stream on a
// terminal).
func (s *Session) Stdout() io.Writer { return output{s} }

// Interrupted reports whether ^C was typed.
func (s *Session) Interrupted() bool {
	s.intrMu.Lock()
	defer s.intrMu.Unlock()
	return s.intr
}

// Run reads keystrokes until the client's input ends, ^D or ^C is typed,
// or Close is called, and then ends the command's input. It is meant to run
// in its own goroutine beside the command.
func (s *Session) Run() {
	if s.in == nil {
		_ = s.stdinW.Close()
		return
	}
	var line Line
	buf := make([]byte, 4096)
	for {
		n, err := s.in.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			r := line.Input(p)
			p = p[r.Consumed:]
			if len(r.Echo) > 0 {
				_ = s.write(r.Echo) // a client gone: the command still gets its input
			}
			if len(r.Data) > 0 {
				if _, werr := s.stdinW.Write(r.Data); werr != nil {
					return // the command's input was closed
				}
			}
			if r.Interrupt {
				s.intrMu.Lock()
				s.intr = true
				s.intrMu.Unlock()
				_ = s.stdinW.Close()
				if s.onIntr != nil {
					s.onIntr()
				}
				return
			}
			if r.EOF {
				_ = s.stdinW.Close()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = s.stdinW.Close()
			} else {
				_ = s.stdinW.CloseWithError(err)
			}
			return
		}
	}
}

// Close ends the command's input (which ends Run once its pending write is
// refused).
func (s *Session) Close() error {
	return s.stdinR.Close()
}

func (s *Session) write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.term.Write(p)
	return err
}

type output struct{ s *Session }

// IsTerminal reports that the output goes to a terminal.
func (output) IsTerminal() bool { return true }

func (o output) Write(p []byte) (int, error) {
	if err := o.s.write(Output(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
