package supervisor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// Fencing on partition. A workload with fence_on_partition must never run on
// two devices at once: the provider places it on another device once this
// one has been offline longer than its device-loss grace, counted from when
// the hub saw the control stream end. The device counts from when it last
// heard from the hub (Config.LastContact), which is no later than that less
// the message's way over the network, and stops the workload a safety margin
// before the grace ends. Both sides measure elapsed time on their own
// monotonic clocks: no clock sync is needed, only clocks that run at about
// the same rate.

// fenceCheckEvery is how often the supervisor looks for workloads to fence.
const fenceCheckEvery = 200 * time.Millisecond

// FenceMargin is how long before its device-loss grace ends a fenced
// workload is stopped: min(10 s, grace/4). It covers a message's way from
// the hub, the check interval and the containers' stop.
func FenceMargin(grace time.Duration) time.Duration {
	return min(10*time.Second, grace/4)
}

// FenceLease is how long a device may go without hearing from the hub before
// a workload with device-loss grace must be stopped: grace − FenceMargin.
func FenceLease(grace time.Duration) time.Duration {
	return grace - FenceMargin(grace)
}

// FenceDue reports whether a fence-on-partition workload with device-loss
// grace must be stopped at now, the device having last heard from the hub at
// lastContact. A zero lastContact (no contact since the agent started: it
// cannot know for how long it has been cut off) always is.
func FenceDue(lastContact time.Time, grace time.Duration, now time.Time) bool {
	if lastContact.IsZero() {
		return true
	}
	return now.Sub(lastContact) >= FenceLease(grace)
}

// fenceSpec is what a workload asks of fencing.
type fenceSpec struct {
	on    bool
	grace time.Duration
}

func fenceOf(spec *hubv1.Workload) fenceSpec {
	return fenceSpec{on: spec.GetFenceOnPartition(), grace: time.Duration(spec.GetDeviceLossGraceMillis()) * time.Millisecond}
}

// fenceWhy says why a workload was fenced, for its status and event.
func fenceWhy(lastContact time.Time, grace time.Duration, now time.Time) string {
	if lastContact.IsZero() {
		return "Stopped: no contact with the hub since the agent started; the pod may run on another device (fence-on-partition)"
	}
	return fmt.Sprintf("Stopped: no contact with the hub for %s, nearly the pod's device-loss grace of %s after which it may run on another device (fence-on-partition)",
		now.Sub(lastContact).Round(100*time.Millisecond), grace)
}

// FenceLease returns the shortest fence lease of the workloads that fence on
// partition, zero if none does: the device must hear from the hub more often
// than that (client.Config.ContactInterval).
func (s *Supervisor) FenceLease() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lease time.Duration
	for _, w := range s.workloads {
		if w.fence.on {
			if l := FenceLease(w.fence.grace); lease == 0 || l < lease {
				lease = max(l, time.Millisecond)
			}
		}
	}
	return lease
}

// fenceLoop stops the workloads whose fence is due until ctx ends.
func (s *Supervisor) fenceLoop(ctx context.Context) {
	t := s.clock.NewTicker(fenceCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			s.checkFences(s.clock.Now())
		}
	}
}

// checkFences fences every workload whose fence is due at now.
func (s *Supervisor) checkFences(now time.Time) {
	if s.cfg.LastContact == nil {
		return
	}
	last := s.cfg.LastContact()
	type due struct {
		w   *workload
		why string
	}
	var fence []due
	s.mu.Lock()
	for uid, w := range s.workloads {
		if !w.fence.on || w.fenced != "" || !FenceDue(last, w.fence.grace, now) {
			continue
		}
		why := fenceWhy(last, w.fence.grace, now)
		w.fenced = why
		s.fenced[uid] = why
		fence = append(fence, due{w, why})
	}
	s.mu.Unlock()
	if len(fence) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, f := range fence {
		wg.Go(func() {
			s.log.Warn("fencing workload: no contact with the hub", "pod", f.w.key(), "lastContact", now.Sub(last).Round(time.Millisecond), "deviceLossGrace", f.w.fence.grace)
			if err := s.store.SetFenced(f.w.spec.GetUid(), f.why); err != nil {
				s.log.Error("persist fenced workload", "pod", f.w.key(), "err", err)
			}
			f.w.halt(f.why)
		})
	}
	wg.Wait()
	if s.cfg.Fenced != nil {
		s.cfg.Fenced()
	}
}

// stopGrace caps the termination grace of a fenced workload's containers: it
// must be stopped well before the device-loss grace ends.
func (w *workload) stopGrace(grace time.Duration) time.Duration {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.fenced == "" {
		return grace
	}
	return min(grace, FenceMargin(w.fence.grace)/2)
}

// halt stops a running workload that was fenced (why says why) and reports
// its containers terminated, or not started, with reason Fenced. Its logs and
// state are kept.
func (w *workload) halt(why string) {
	since := time.Now()
	w.stop(false)
	w.markFenced(why, since)
	w.event("", "Warning", reasons.Fenced, "%s", why)
}

// markFenced sets the state of every container that was running, waiting,
// or stopped since since to say it was fenced; containers that ended before
// (completed init containers) keep theirs.
func (w *workload) markFenced(why string, since time.Time) {
	w.mu.Lock()
	w.fencedWhy = why
	for _, cs := range w.containers {
		cs.Ready, cs.Started = false, false
		switch st := cs.GetState(); {
		case st.GetTerminated() != nil:
			t := st.GetTerminated()
			if t.GetFinishedAt().AsTime().Before(since) {
				continue
			}
			cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
				ExitCode: t.GetExitCode(), Reason: reasons.Fenced, Message: why, StartedAt: t.GetStartedAt(), FinishedAt: t.GetFinishedAt(),
			}}}
		case st.GetRunning() != nil:
			cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
				ExitCode: 137, Reason: reasons.Fenced, Message: why, StartedAt: st.GetRunning().GetStartedAt(), FinishedAt: timestamppb.Now(),
			}}}
		default:
			cs.State = waiting(reasons.Fenced, why)
		}
	}
	w.mu.Unlock()
	w.publish()
}

// idle makes w a workload that does not run: fenced before it started.
func (w *workload) idle(why string) {
	w.cancel = func() {}
	close(w.started)
	close(w.done)
	w.markFenced(why, time.Now())
	w.event("", "Warning", reasons.Fenced, "%s", why)
}

// endFenced reports the containers of a fenced workload that was removed
// from the desired state as terminated, so that its pod's deletion can end.
func (w *workload) endFenced() {
	w.s.mu.Lock()
	why := w.fenced
	w.s.mu.Unlock()
	if why == "" {
		return
	}
	w.mu.Lock()
	for _, cs := range w.containers {
		if st := cs.GetState(); st.GetTerminated() == nil {
			now := timestamppb.Now()
			cs.State = &hubv1.ContainerState{State: &hubv1.ContainerState_Terminated_{Terminated: &hubv1.ContainerState_Terminated{
				Reason: reasons.Fenced, Message: why, FinishedAt: now,
			}}}
		}
	}
	w.mu.Unlock()
	w.publish()
}
