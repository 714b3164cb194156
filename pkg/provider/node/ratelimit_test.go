package node

import (
	"testing"
	"time"
)

func TestPodQueueRateLimiter(t *testing.T) {
	l := PodQueueRateLimiter()
	want := []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond}
	for i, w := range want {
		if got := l.When("a"); got != w {
			t.Errorf("try %d of a: wait %v, want %v", i+1, got, w)
		}
	}
	if got := l.NumRequeues("a"); got != len(want)-1 {
		t.Errorf("NumRequeues(a) = %d, want %d", got, len(want)-1)
	}
	if got := l.When("b"); got != 0 {
		t.Errorf("first try of b: wait %v, want none", got)
	}
	for range 40 {
		l.When("a")
	}
	if got := l.When("a"); got != 30*time.Second {
		t.Errorf("after many retries: wait %v, want the 30s cap", got)
	}
	l.Forget("a")
	if got, n := l.When("a"), l.NumRequeues("a"); got != 0 || n != 0 {
		t.Errorf("after Forget: wait %v with %d requeues, want a first try again", got, n)
	}
}
