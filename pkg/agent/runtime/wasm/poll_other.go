//go:build !linux

package wasm

// newPoller has no poller to offer off Linux: poll_oneoff stays wazero's,
// which reports sockets ready at once, and the instance's capped sleeps make
// it look at them again soon (see Instance.sleep).
func newPoller() (poller, error) { return nil, nil }
