package workingset

import (
	"testing"
	"time"
)

func TestDetector(t *testing.T) {
	const idle = 100 * time.Millisecond
	tests := []struct {
		name string
		used []time.Duration // CPU time per interval
		want []bool          // trim after each
	}{
		{name: "idle after start", used: []time.Duration{0}, want: []bool{true}},
		{name: "busy start, then idle", used: []time.Duration{time.Second, 2 * time.Second, 0}, want: []bool{false, false, true}},
		{name: "steadily idle trims once", used: []time.Duration{0, 0, 0, 10 * time.Millisecond}, want: []bool{true, false, false, false}},
		{name: "busy again, trimmed again", used: []time.Duration{0, 0, idle, 0, 0}, want: []bool{true, false, false, true, false}},
		{name: "busy throughout", used: []time.Duration{idle, idle, time.Second}, want: []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := detector{idle: idle, busy: true}
			for i, u := range tt.used {
				if got := d.step(u); got != tt.want[i] {
					t.Errorf("interval %d (%v used): trim %v, want %v", i, u, got, tt.want[i])
				}
			}
		})
	}
}
