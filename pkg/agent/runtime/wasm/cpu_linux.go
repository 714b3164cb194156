package wasm

import (
	"sync"

	"golang.org/x/sys/unix"
)

// threadCPU measures the CPU time of an instance's goroutine through the
// CPU-time clock of the OS thread it is locked to while it runs, which any
// thread of the process may read. The goroutine unlocks its thread while it
// blocks (offThread), so that a sleeping module holds no thread; each time it
// runs again, on whichever thread, the next stretch is added.
type threadCPU struct {
	mu       sync.Mutex
	clock    int64 // the running thread's clock id; 0 while off a thread
	base     int64 // the clock's reading when the stretch began, in ns
	acc      int64 // the CPU time of the stretches before, in ns
	measured bool  // the clock could be read at start
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
	c.resume()
	c.mu.Lock()
	c.measured = c.clock != 0
	c.mu.Unlock()
}

// resume is called by the goroutine once it is locked to a thread again.
func (c *threadCPU) resume() {
	id := threadClock(unix.Gettid())
	now, ok := readClock(id)
	if !ok {
		return
	}
	c.mu.Lock()
	c.clock, c.base = id, now
	c.mu.Unlock()
}

// pause is called by the locked goroutine before it leaves its thread.
func (c *threadCPU) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clock == 0 {
		return
	}
	if now, ok := readClock(c.clock); ok {
		c.acc += max(0, now-c.base)
	}
	c.clock = 0
}

// stop is called by the locked goroutine after the module ended.
func (c *threadCPU) stop() { c.pause() }

// used returns the CPU time used so far, and whether it could be measured.
func (c *threadCPU) used() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.measured {
		return 0, false
	}
	u := c.acc
	if c.clock != 0 {
		if now, ok := readClock(c.clock); ok {
			u += max(0, now-c.base)
		}
	}
	return uint64(u), true
}
