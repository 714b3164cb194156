package experimental

import (
	"context"

	"github.com/tetratelabs/wazero/internal/expctxkeys"
)

// WithYieldHook returns a context that makes the compiled code of functions
// called with it, in a runtime configured WithCloseOnContextDone(true), call
// hook (from Go, on the calling goroutine) each time it calls out of its
// loops to Go (every 2^18 loop iterations, edgefabric's patch), instead of
// yielding to the Go scheduler. The hook may block, to hold a module back
// (a CPU limit), and should yield to the scheduler itself.
func WithYieldHook(ctx context.Context, hook func()) context.Context {
	return context.WithValue(ctx, expctxkeys.YieldHookKey{}, hook)
}
