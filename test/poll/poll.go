// Package poll waits, in tests, for a condition that another goroutine or
// process makes true.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every 10 ms until it returns true, and fails the test if
// it has not within timeout.
func Until(tb testing.TB, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
