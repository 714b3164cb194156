// Package clock is the agent's view of time. Code that decides by time —
// how long ago the hub was last heard from, when to reconnect, when a
// workload must be fenced — takes a Clock, so that its tests step a
// clocktest.Fake instead of sleeping. Real is the system clock.
//
// The agent avoids Kubernetes' libraries (k8s.io/utils/clock among them),
// hence this small interface.
package clock

import "time"

// Clock tells the time and makes timers. Implementations are safe for
// concurrent use; none of the methods blocks.
type Clock interface {
	Now() time.Time
	Since(t time.Time) time.Duration
	// NewTimer returns a timer that sends the time on its channel once d
	// has passed.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a ticker that sends the time on its channel every
	// d (d > 0), dropping ticks a slow reader misses, as time.Ticker does.
	NewTicker(d time.Duration) Ticker
}

// Timer is a time.Timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is a time.Ticker.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real is the system clock.
type Real struct{}

var _ Clock = Real{}

func (Real) Now() time.Time                  { return time.Now() }
func (Real) Since(t time.Time) time.Duration { return time.Since(t) }
func (Real) NewTimer(d time.Duration) Timer  { return realTimer{time.NewTimer(d)} }
func (Real) NewTicker(d time.Duration) Ticker {
	return realTicker{time.NewTicker(d)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

// Or returns c, or Real if c is nil: what a Config's nil Clock means.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
