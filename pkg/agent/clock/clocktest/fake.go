// Package clocktest is a clock.Clock that tests step by hand.
package clocktest

import (
	"context"
	"sync"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/clock"
)

// Fake is a clock that moves only when Step is called. Its timers and
// tickers fire during Step, in the order of their deadlines; each has a
// channel of capacity 1, and a tick that finds it full is dropped, as with
// the time package. The zero value is not usable: call New.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters map[*waiter]struct{}
	changed chan struct{} // closed and replaced whenever a waiter is added
}

var _ clock.Clock = (*Fake)(nil)

// New returns a fake clock that reads now.
func New(now time.Time) *Fake {
	return &Fake{now: now, waiters: map[*waiter]struct{}{}, changed: make(chan struct{})}
}

// waiter is a timer (period 0) or a ticker.
type waiter struct {
	f      *Fake
	c      chan time.Time
	at     time.Time
	period time.Duration
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Since returns the fake time elapsed since t.
func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

// NewTimer returns a timer that fires once the clock was stepped d on.
func (f *Fake) NewTimer(d time.Duration) clock.Timer {
	return f.add(d, 0)
}

// NewTicker returns a ticker that fires every d of stepped time.
func (f *Fake) NewTicker(d time.Duration) clock.Ticker {
	if d <= 0 {
		panic("clocktest: non-positive interval for NewTicker")
	}
	return ticker{f.add(d, d)}
}

// ticker is a waiter whose Stop returns nothing, as time.Ticker's.
type ticker struct{ w *waiter }

func (t ticker) C() <-chan time.Time { return t.w.c }
func (t ticker) Stop()               { t.w.Stop() }

func (f *Fake) add(d, period time.Duration) *waiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &waiter{f: f, c: make(chan time.Time, 1), at: f.now.Add(d), period: period}
	f.addLocked(w)
	return w
}

func (f *Fake) addLocked(w *waiter) {
	f.waiters[w] = struct{}{}
	close(f.changed)
	f.changed = make(chan struct{})
}

// Step moves the clock d on and fires the timers and tickers due by then.
// A ticker due several times fires once per period passed, each tick dropped
// when its channel is full.
func (f *Fake) Step(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		var next *waiter
		for w := range f.waiters {
			if !w.at.After(end) && (next == nil || w.at.Before(next.at)) {
				next = w
			}
		}
		if next == nil {
			break
		}
		f.now = next.at
		select {
		case next.c <- next.at:
		default:
		}
		if next.period > 0 {
			next.at = next.at.Add(next.period)
		} else {
			delete(f.waiters, next)
		}
	}
	f.now = end
}

// Waiters returns how many timers and tickers are pending.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// WaitForWaiters blocks until at least n timers and tickers are pending (a
// goroutine under test reached its wait), or ctx ends; it reports whether
// they are.
func (f *Fake) WaitForWaiters(ctx context.Context, n int) bool {
	for {
		f.mu.Lock()
		ok, changed := len(f.waiters) >= n, f.changed
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

func (w *waiter) C() <-chan time.Time { return w.c }

// Stop stops the timer or ticker; it reports whether it was pending.
func (w *waiter) Stop() bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	_, ok := w.f.waiters[w]
	delete(w.f.waiters, w)
	return ok
}

// Reset makes the timer fire d after the clock's now; it reports whether it
// was pending.
func (w *waiter) Reset(d time.Duration) bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	_, ok := w.f.waiters[w]
	w.at = w.f.now.Add(d)
	w.f.addLocked(w)
	return ok
}
