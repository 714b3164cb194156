package wasm

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// threadCPU measures the CPU time of the OS thread an instance's goroutine
// is locked to, through the thread's CPU-time clock, which any thread of the
// process may read.
type threadCPU struct {
	clock atomic.Int64 // the thread's clock id; 0 before start
	base  atomic.Int64 // the clock's reading at start, in ns
	final atomic.Int64 // the usage at stop, in ns; -1 while running
}

// threadClock is the CPU-time clock id of thread tid: the kernel's
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
func threadClock(tid int) int64 { return int64(^uint32(tid))<<3 | 6 }

func readClock(id int64) (int64, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(id), &ts); err != nil {
		return 0, false
	}
	return ts.Nano(), true
}

// start is called by the locked goroutine before the module runs.
func (c *threadCPU) start() {
	id := threadClock(unix.Gettid())
	now, ok := readClock(id)
	if !ok {
		return
	}
	c.final.Store(-1)
	c.base.Store(now)
	c.clock.Store(id)
}

// stop is called by the locked goroutine after the module ended.
func (c *threadCPU) stop() {
	id := c.clock.Load()
	if id == 0 {
		return
	}
	if now, ok := readClock(id); ok {
		c.final.Store(max(0, now-c.base.Load()))
	} else {
		c.final.Store(0)
	}
}

// used returns the CPU time used so far, and whether it could be measured.
func (c *threadCPU) used() (uint64, bool) {
	id := c.clock.Load()
	if id == 0 {
		return 0, false
	}
	if f := c.final.Load(); f >= 0 {
		return uint64(f), true
	}
	now, ok := readClock(id)
	if !ok {
		return 0, false
	}
	return uint64(max(0, now-c.base.Load())), true
}
