package workingset

import (
	"testing"
	"time"
)

func TestDetector(t *testing.T) {
	const idle = 100 * time.Millisecond
	tests := []struct {
		name    string
		used    []time.Duration // CPU time per interval
		regrown []bool          // file pages grew back, per interval; nil: never
		want    []action        // what to do after each
	}{
		{name: "idle after start", used: []time.Duration{0}, want: []action{trim}},
		{name: "busy start, then idle", used: []time.Duration{time.Second, 2 * time.Second, 0}, want: []action{none, none, trim}},
		{name: "steadily idle trims once", used: []time.Duration{0, 0, 0, 10 * time.Millisecond}, want: []action{trim, none, none, none}},
		{name: "busy again: wake, then trimmed again", used: []time.Duration{0, 0, idle, idle, 0, 0}, want: []action{trim, none, wake, none, trim, none}},
		{name: "busy throughout", used: []time.Duration{idle, idle, time.Second}, want: []action{none, none, none}},
		{name: "idle, pages grown back: trimmed again", used: []time.Duration{0, 0, 0, 0}, regrown: []bool{false, true, false, true}, want: []action{trim, trim, none, trim}},
		{name: "grown back while busy: wake, not trim", used: []time.Duration{0, idle, 0}, regrown: []bool{false, true, true}, want: []action{trim, wake, trim}},
		{name: "grown before any trim: nothing more", used: []time.Duration{idle, idle}, regrown: []bool{true, true}, want: []action{none, none}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := detector{idle: idle, busy: true}
			for i, u := range tt.used {
				regrown := tt.regrown != nil && tt.regrown[i]
				if got := d.step(u, regrown); got != tt.want[i] {
					t.Errorf("interval %d (%v used, regrown %v): %v, want %v", i, u, regrown, got, tt.want[i])
				}
			}
		})
	}
}
