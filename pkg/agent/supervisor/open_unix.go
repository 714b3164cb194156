//go:build unix

package supervisor

import "syscall"

// openNoBlock keeps an open of a FIFO from waiting for a writer.
const openNoBlock = syscall.O_NONBLOCK
