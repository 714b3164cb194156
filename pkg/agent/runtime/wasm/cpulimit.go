package wasm

import (
	"runtime"
	"time"
)

// cpuPeriod is the period over which a module's CPU limit is enforced: a
// module may use limit × cpuPeriod of CPU time in each, as with the kernel's
// CFS bandwidth control for processes (whose default period this is).
const cpuPeriod = 100 * time.Millisecond

// cpuThrottle holds a module to its CPU limit. Its wait is the module's
// yield hook (experimental.WithYieldHook): the module's compiled code calls
// it from its loops about every millisecond of computing, on the
// instance's goroutine, which is locked to its thread, so that the thread's
// CPU time is the module's. Once the module has used its quota in the
// current period, wait sleeps until the period ends. CPU time spent in host
// calls counts too, as in a cgroup; it is only held back at the module's
// next loop.
type cpuThrottle struct {
	quota time.Duration // CPU time per period
	cpu   *threadCPU
	stop  <-chan struct{} // closed by Stop: no more holding back

	periodStart time.Time
	usedAtStart uint64 // the module's CPU time, in ns, when the period started
}

// newCPUThrottle returns a throttle for a limit in thousandths of a CPU, or
// nil where no throttle is needed: no limit, or at least a whole CPU (a
// module runs on one thread).
func newCPUThrottle(limitMillis int64, cpu *threadCPU, stop <-chan struct{}) *cpuThrottle {
	if limitMillis <= 0 || limitMillis >= 1000 {
		return nil
	}
	return &cpuThrottle{quota: cpuPeriod * time.Duration(limitMillis) / 1000, cpu: cpu, stop: stop}
}

// wait holds the module back if it has used its quota, and otherwise yields
// to the Go scheduler as the runtime would without a hook.
func (t *cpuThrottle) wait() {
	used, ok := t.cpu.used()
	now := time.Now()
	switch {
	case !ok:
	case t.periodStart.IsZero() || now.Sub(t.periodStart) >= cpuPeriod:
		t.periodStart, t.usedAtStart = now, used
	case time.Duration(used-t.usedAtStart) >= t.quota:
		timer := time.NewTimer(cpuPeriod - now.Sub(t.periodStart))
		offThread(t.cpu, func() {
			select {
			case <-timer.C:
			case <-t.stop:
			}
		})
		timer.Stop()
		t.periodStart = time.Now()
		t.usedAtStart, _ = t.cpu.used()
		return
	}
	runtime.Gosched()
}
