package node

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/edgefabric/edgefabric/pkg/apis/hub/v1/reasons"
)

// countingSink records the events written to it.
type countingSink struct{ writes []string }

func (s *countingSink) Create(ev *corev1.Event) (*corev1.Event, error) {
	s.writes = append(s.writes, "create "+ev.Reason)
	return ev, nil
}

func (s *countingSink) Update(ev *corev1.Event) (*corev1.Event, error) {
	s.writes = append(s.writes, "update "+ev.Reason)
	return ev, nil
}

func (s *countingSink) Patch(ev *corev1.Event, _ []byte) (*corev1.Event, error) {
	s.writes = append(s.writes, "patch "+ev.Reason)
	return ev, nil
}

func TestRateLimitedSink(t *testing.T) {
	ev := &corev1.Event{Reason: reasons.Started}
	t.Run("writes through while the limiter allows", func(t *testing.T) {
		inner := &countingSink{}
		s := &rateLimitedSink{ctx: t.Context(), limiter: flowcontrol.NewTokenBucketRateLimiter(1000, 10), sink: inner}
		_, _ = s.Create(ev)
		_, _ = s.Update(ev)
		_, _ = s.Patch(ev, nil)
		if got := len(inner.writes); got != 3 {
			t.Errorf("got %d writes %v, want 3", got, inner.writes)
		}
	})
	t.Run("stops writing once its context ends", func(t *testing.T) {
		inner := &countingSink{}
		ctx, cancel := context.WithCancel(t.Context())
		// One token, refilled once a day: the second write has to wait.
		s := &rateLimitedSink{ctx: ctx, limiter: flowcontrol.NewTokenBucketRateLimiter(1.0/86400, 1), sink: inner}
		if _, err := s.Create(ev); err != nil {
			t.Fatalf("first write: %v", err)
		}
		cancel()
		if _, err := s.Create(ev); err == nil {
			t.Error("second write after cancel: got no error")
		}
		if got := len(inner.writes); got != 1 {
			t.Errorf("got %d writes, want 1", got)
		}
	})
}
