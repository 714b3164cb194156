// Package boundary keeps remote input from taking a process down. The agent
// and the hub defer Recover at the top of every handler of what the other
// side (or the LAN) sends them: a panic there, a bug that some input
// reaches, ends that one request with an error and a logged stack instead
// of the whole process, with every pod the agent runs or every device the
// hub serves.
package boundary

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// ErrPanic is wrapped by the error Recover sets: the handler hit a bug.
var ErrPanic = errors.New("internal error (a bug; the stack is in the log)")

// Recover, deferred at the top of a handler, recovers from a panic in it:
// it logs the panic value and the stack at Error as "handler panicked" with
// the handler's name what, and, when err is not nil, sets *err to an error
// wrapping ErrPanic. Without a panic it does nothing. It only sees panics in
// its own goroutine: a handler's goroutines defer it too.
//
//	func serve(...) (err error) {
//		defer boundary.Recover(log, "serve logs", &err)
//		...
//	}
func Recover(log *slog.Logger, what string, err *error) {
	v := recover()
	if v == nil {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	log.Error("handler panicked", "handler", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if err != nil {
		*err = fmt.Errorf("%s: %w", what, ErrPanic)
	}
}
