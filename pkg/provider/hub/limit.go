package hub

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// BootstrapLimits bounds how often Bootstrap may be called: a token bucket
// per source IP address and one for all callers together. A call over
// either limit is refused with ResourceExhausted before its token is
// looked at.
type BootstrapLimits struct {
	// PerSource is the sustained rate of calls from one IP address, per
	// second. Zero means 1.
	PerSource float64
	// PerSourceBurst is how many calls one address may make at once. Zero
	// means 20 (a site behind one NAT enrolling a batch of devices).
	PerSourceBurst int
	// Total is the sustained rate of calls from all addresses, per second.
	// Zero means 20.
	Total float64
	// TotalBurst is how many calls all addresses may make at once. Zero
	// means 100.
	TotalBurst int
}

// Validate reports a limit that cannot work: a negative rate or burst.
func (l BootstrapLimits) Validate() error {
	if l.PerSource < 0 || l.Total < 0 || l.PerSourceBurst < 0 || l.TotalBurst < 0 {
		return fmt.Errorf("bootstrap limits: rates and bursts must not be negative (per source %g/s burst %d, total %g/s burst %d)",
			l.PerSource, l.PerSourceBurst, l.Total, l.TotalBurst)
	}
	return nil
}

func (l *BootstrapLimits) defaults() {
	if l.PerSource == 0 {
		l.PerSource = 1
	}
	if l.PerSourceBurst == 0 {
		l.PerSourceBurst = 20
	}
	if l.Total == 0 {
		l.Total = 20
	}
	if l.TotalBurst == 0 {
		l.TotalBurst = 100
	}
}

// maxSources is how many per-address buckets are kept before the full ones
// (addresses quiet long enough to have their whole burst back) are dropped.
const maxSources = 4096

// limiter applies BootstrapLimits. It is safe for concurrent use.
type limiter struct {
	cfg   BootstrapLimits
	total *rate.Limiter

	mu      sync.Mutex
	sources map[string]*rate.Limiter
}

func newLimiter(cfg BootstrapLimits) *limiter {
	return &limiter{
		cfg:     cfg,
		total:   rate.NewLimiter(rate.Limit(cfg.Total), cfg.TotalBurst),
		sources: map[string]*rate.Limiter{},
	}
}

// allow takes one call from source at now, or returns an error that says
// which limit refused it and when to try again.
func (l *limiter) allow(source string, now time.Time) error {
	l.mu.Lock()
	src, ok := l.sources[source]
	if !ok {
		if len(l.sources) >= maxSources {
			for s, b := range l.sources {
				if b.TokensAt(now) >= float64(b.Burst()) {
					delete(l.sources, s)
				}
			}
		}
		if len(l.sources) >= maxSources {
			l.mu.Unlock()
			return fmt.Errorf("too many bootstrap attempts from too many addresses; try again in %s", wait(time.Second))
		}
		src = rate.NewLimiter(rate.Limit(l.cfg.PerSource), l.cfg.PerSourceBurst)
		l.sources[source] = src
	}
	l.mu.Unlock()
	if d := take(src, now); d > 0 {
		return fmt.Errorf("too many bootstrap attempts from %s (limit %g a second, %d at once); try again in %s", source, l.cfg.PerSource, l.cfg.PerSourceBurst, wait(d))
	}
	if d := take(l.total, now); d > 0 {
		return fmt.Errorf("too many bootstrap attempts at this hub (limit %g a second, %d at once); try again in %s", l.cfg.Total, l.cfg.TotalBurst, wait(d))
	}
	return nil
}

// take takes a token from b at now and returns 0, or takes none and returns
// how long until one is there.
func take(b *rate.Limiter, now time.Time) time.Duration {
	r := b.ReserveN(now, 1)
	if !r.OK() {
		return time.Duration(math.MaxInt64)
	}
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now)
	}
	return d
}

// wait rounds d up to a whole second for messages.
func wait(d time.Duration) time.Duration {
	if d > time.Hour {
		return time.Hour
	}
	return (d + time.Second - 1).Truncate(time.Second)
}
