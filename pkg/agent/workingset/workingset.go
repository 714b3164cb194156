// Package workingset gives the agent's clean file-backed pages back to the
// kernel once the agent goes idle.
//
// A Go binary's text and read-only data are mapped from its file. Starting up,
// pulling and compiling touch most of them, and the kernel maps pages around
// every fault, so an idle agent keeps about as many of them resident as the
// binary is large (16 of 18 MB), though its idle loop uses about one. Trim
// asks the kernel to page those mappings out (MADV_PAGEOUT): clean pages are
// dropped and read back on their next use; anonymous pages, and pages other
// processes map too, stay. It discards nothing the process wrote, so it is
// safe on any mapping. Before that, Run collects the Go heap's garbage and
// returns its free pages to the kernel. Where the kernel lacks MADV_PAGEOUT (before Linux 5.4)
// or on other systems it does nothing.
//
// The kernel reads ahead around a page fault in a file and maps the
// neighbouring pages it has cached (64 KiB), so an idle agent that touches a
// few scattered pages of its binary would soon have megabytes of it resident
// again. Trim therefore also marks those mappings for random access
// (MADV_RANDOM: no read-ahead, so a fault reads and maps one page) until Wake
// restores the default.
//
// Run trims when the process has been idle (less than IdleCPU of CPU time in
// an Interval) after having been busy, so that a steadily idle agent is not
// trimmed over and over, and a busy one not at all; and wakes at the first
// busy interval after a trim, so that a busy agent reads its binary with
// read-ahead.
package workingset

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// Config configures Run. The zero value trims after 10 s under 1% CPU.
type Config struct {
	// Interval is how often the process's CPU time is sampled; zero means 10 s.
	Interval time.Duration
	// IdleCPU is the share of one CPU below which an interval counts as
	// idle; zero means 0.01.
	IdleCPU float64
}

func (c *Config) defaults() {
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.IdleCPU == 0 {
		c.IdleCPU = 0.01
	}
}

// Run trims the working set each time the process goes idle, until ctx ends.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	cfg.defaults()
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	d := detector{idle: time.Duration(cfg.IdleCPU * float64(cfg.Interval)), busy: true} // starting up is busy
	last := cpuTime()
	var trimmedTo int64 // file-backed resident bytes right after the last trim
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := cpuTime()
		act := d.step(now-last, residentFile()-trimmedTo >= regrowth)
		last = now
		switch act {
		case wake:
			if err := Wake(); err != nil {
				log.Debug("read-ahead not restored", "err", err)
			}
			continue
		case none:
			continue
		}
		// The Go heap first: what the busy spell allocated and dropped is
		// garbage that an idle agent would not collect for minutes, nor
		// the scavenger give back to the kernel at once.
		debug.FreeOSMemory()
		st, err := Trim()
		if err != nil {
			log.Debug("working set not trimmed", "err", err)
			continue
		}
		log.Debug("working set trimmed", "mappings", st.Mappings, "bytes", st.Bytes, "residentBefore", st.ResidentBefore, "residentAfter", st.ResidentAfter)
		trimmedTo = residentFile()
		last = cpuTime() // the trim's own CPU time is not activity
	}
}

// action is what Run does after an interval.
type action int

const (
	none action = iota
	trim        // the process went idle: trim its working set
	wake        // busy again after a trim: restore read-ahead
)

// regrowth is how much file-backed memory an idle process may bring back
// after a trim before it is trimmed again: the tail of a busy spell (the
// last status reports, finalizers, the first round of periodic work) runs
// code once more after the process has gone idle, and those pages would
// stay resident.
const regrowth = 1 << 20

// detector decides, interval by interval, when the process has gone idle
// and when it is busy again.
type detector struct {
	idle    time.Duration // CPU time per interval below which it counts as idle
	busy    bool          // there was activity since the last trim
	trimmed bool          // trimmed, and not busy since
}

// step takes the CPU time used in the last interval, and whether file pages
// grew back by regrowth since the last trim, and says what to do: trim at the
// first idle interval after a busy one, and again at an idle interval once
// pages grew back; wake at the first busy interval after a trim.
func (d *detector) step(used time.Duration, regrown bool) action {
	if used >= d.idle {
		d.busy = true
		if d.trimmed {
			d.trimmed = false
			return wake
		}
		return none
	}
	if !d.busy && (!d.trimmed || !regrown) {
		return none
	}
	d.busy, d.trimmed = false, true
	return trim
}

// Stats says what a Trim did.
type Stats struct {
	Mappings int   // file-backed mappings paged out
	Bytes    int64 // their total size
	// ResidentBefore and ResidentAfter are the process's resident set, in
	// bytes, around the trim (0 where unknown).
	ResidentBefore, ResidentAfter int64
}
