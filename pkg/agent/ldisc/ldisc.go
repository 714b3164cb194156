// Package ldisc is the line discipline of a terminal in its default cooked
// mode, for commands that have no terminal of their own (WASI modules) but
// are run for a client that sent raw keystrokes (kubectl exec -t puts the
// user's terminal in raw mode). The agent emulates what a pseudo-terminal
// would do:
//
//   - input is echoed, control characters as ^X;
//   - CR is read as NL (ICRNL);
//   - a line reaches the command when NL ends it;
//   - backspace and DEL erase a character, ^U the whole line;
//   - ^D at the start of a line is end of file (elsewhere it passes the
//     line so far without NL);
//   - ^C interrupts the command (as SIGINT would);
//   - NL written by the command goes out as CRNL (ONLCR).
//
// Line is the pure core: it turns keystrokes into echo and lines and does no
// I/O. Session wires a Line between a client's streams and a command's.
package ldisc

import "unicode/utf8"

// MaxLine is the longest line (as Linux's N_TTY): further characters are
// dropped until the line ends.
const MaxLine = 4095

// Control characters of the default termios.
const (
	intr  = 0x03 // ^C
	eof   = 0x04 // ^D
	bs    = 0x08 // ^H
	kill  = 0x15 // ^U
	erase = 0x7f // DEL
)

// Line is a line being typed. Its zero value is an empty line.
type Line struct {
	buf []byte
}

// Result is what some input gave.
type Result struct {
	// Echo goes back to the client's terminal.
	Echo []byte
	// Data is complete lines (and ^D-flushed partial ones) for the command.
	Data []byte
	// EOF: ^D was typed at the start of a line; input after it was not read.
	EOF bool
	// Interrupt: ^C was typed; the line was discarded and input after it
	// was not read.
	Interrupt bool
	// Consumed is how many bytes of the input were read.
	Consumed int
}

// Input processes keystrokes p. It stops after an EOF or an interrupt
// (Consumed says where).
func (l *Line) Input(p []byte) Result {
	var r Result
	for k, c := range p {
		r.Consumed = k + 1
		switch c {
		case '\r', '\n':
			l.buf = append(l.buf, '\n')
			r.Data = append(r.Data, l.buf...)
			r.Echo = append(r.Echo, '\r', '\n')
			l.buf = l.buf[:0]
		case erase, bs:
			r.Echo = append(r.Echo, l.rubout()...)
		case kill:
			for len(l.buf) > 0 {
				r.Echo = append(r.Echo, l.rubout()...)
			}
		case eof:
			if len(l.buf) == 0 {
				r.EOF = true
				return r
			}
			r.Data = append(r.Data, l.buf...)
			l.buf = l.buf[:0]
		case intr:
			r.Echo = append(r.Echo, '^', 'C', '\r', '\n')
			l.buf = l.buf[:0]
			r.Interrupt = true
			return r
		default:
			if len(l.buf) >= MaxLine {
				continue
			}
			l.buf = append(l.buf, c)
			if c < 0x20 && c != '\t' {
				r.Echo = append(r.Echo, '^', c+'@')
			} else {
				r.Echo = append(r.Echo, c)
			}
		}
	}
	return r
}

// rubout removes the line's last character (a whole UTF-8 sequence) and
// returns what erases it on the screen: one "\b \b" per column, two for a
// control character echoed as ^X.
func (l *Line) rubout() []byte {
	if len(l.buf) == 0 {
		return nil
	}
	last := len(l.buf) - 1
	c := l.buf[last]
	if c >= 0x80 {
		// Back to the first byte of the sequence (at most 4 bytes).
		for last > 0 && len(l.buf)-last < utf8.UTFMax && !utf8.RuneStart(l.buf[last]) {
			last--
		}
	}
	l.buf = l.buf[:last]
	if c < 0x20 && c != '\t' {
		return []byte("\b \b\b \b")
	}
	return []byte("\b \b")
}

// Output converts a command's output for the terminal: NL becomes CRNL.
func Output(p []byte) []byte {
	n := 0
	for _, c := range p {
		if c == '\n' {
			n++
		}
	}
	if n == 0 {
		return p
	}
	out := make([]byte, 0, len(p)+n)
	for _, c := range p {
		if c == '\n' {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
