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
// safe on any mapping. Where the kernel lacks MADV_PAGEOUT (before Linux 5.4)
// or on other systems it does nothing.
//
// Run trims when the process has been idle (less than IdleCPU of CPU time in
// an Interval) after having been busy, so that a steadily idle agent is not
// trimmed over and over, and a busy one not at all.
package workingset

import (
	"context"
	"log/slog"
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := cpuTime()
		trim := d.step(now - last)
		last = now
		if !trim {
			continue
		}
		st, err := Trim()
		if err != nil {
			log.Debug("working set not trimmed", "err", err)
			continue
		}
		log.Debug("working set trimmed", "mappings", st.Mappings, "bytes", st.Bytes, "residentBefore", st.ResidentBefore, "residentAfter", st.ResidentAfter)
		last = cpuTime() // the trim's own CPU time is not activity
	}
}

// detector decides, interval by interval, when the process has gone idle.
type detector struct {
	idle time.Duration // CPU time per interval below which it counts as idle
	busy bool          // there was activity since the last trim
}

// step takes the CPU time used in the last interval and reports whether to
// trim now: at the first idle interval after a busy one.
func (d *detector) step(used time.Duration) bool {
	if used >= d.idle {
		d.busy = true
		return false
	}
	trim := d.busy
	d.busy = false
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
