// Package pty allocates pseudo-terminals for commands that ask for a
// terminal (kubectl exec -t): Open returns the master, which the agent reads
// and writes, and the slave, which becomes the command's stdin, stdout and
// stderr and its controlling terminal. It is built without cgo; where the
// system has no pseudo-terminals Open returns ErrUnsupported and callers fall
// back to pipes.
package pty

import (
	"errors"
	"os"
)

// Size is a terminal's size in characters.
type Size struct {
	Width, Height uint16
}

// ErrUnsupported is returned by Open where pseudo-terminals are not available.
var ErrUnsupported = errors.New("pseudo-terminals are not supported on this system")

// Open allocates a pseudo-terminal: master is the agent's side, slave the
// command's (opened without becoming the agent's controlling terminal).
// The caller closes both; the slave can be closed once the command started.
func Open() (master, slave *os.File, err error) { return open() }

// SetSize sets the terminal size of f (master or slave); the kernel sends
// SIGWINCH to the terminal's foreground process group when it changes.
func SetSize(f *os.File, s Size) error { return setSize(f, s) }

// GetSize reads the terminal size of f.
func GetSize(f *os.File) (Size, error) { return getSize(f) }

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return isTerminal(f) }
