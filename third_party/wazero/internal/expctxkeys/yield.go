package expctxkeys

// YieldHookKey is a context.Context Value key. Its associated value should be
// a func().
type YieldHookKey struct{}
