package clocktest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFakeFiresWhatIsDue(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	f := New(t0)
	timer := f.NewTimer(3 * time.Second)
	ticker := f.NewTicker(time.Second)
	fired := func() (got []string) {
		select {
		case at := <-timer.C():
			got = append(got, "timer "+at.Sub(t0).String())
		default:
		}
		select {
		case at := <-ticker.C():
			got = append(got, "tick "+at.Sub(t0).String())
		default:
		}
		return got
	}
	steps := []struct {
		step time.Duration
		want []string
	}{
		{500 * time.Millisecond, nil},
		{500 * time.Millisecond, []string{"tick 1s"}},
		{1500 * time.Millisecond, []string{"tick 2s"}},
		// Ticks at 3s and 4s: the second is dropped, the channel being full.
		{2 * time.Second, []string{"timer 3s", "tick 3s"}},
		{time.Second, []string{"tick 5s"}},
	}
	for i, s := range steps {
		f.Step(s.step)
		if diff := cmp.Diff(s.want, fired()); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", i, diff)
		}
	}
	if got, want := f.Now(), t0.Add(5500*time.Millisecond); !got.Equal(want) {
		t.Errorf("Now: got %v, want %v", got, want)
	}
	if f.Waiters() != 1 {
		t.Errorf("waiters: got %d, want the ticker alone", f.Waiters())
	}
	if timer.Reset(time.Second) {
		t.Error("Reset of a fired timer: got pending")
	}
	ticker.Stop()
	if !f.WaitForWaiters(t.Context(), 1) {
		t.Fatal("WaitForWaiters: the reset timer is not pending")
	}
	f.Step(time.Second)
	if diff := cmp.Diff([]string{"timer 6.5s"}, fired()); diff != "" {
		t.Errorf("after Reset (-want +got):\n%s", diff)
	}
}
