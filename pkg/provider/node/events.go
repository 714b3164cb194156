package node

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
)

// rateLimitedSink writes events through sink no faster than its limiter
// allows, as the kubelet does with its own event QPS: events are for people,
// and under a burst of pods they must not take the API server from the
// status writes the pods wait on. The broadcaster writes events one at a
// time from its own goroutine, so waiting here delays only other events.
type rateLimitedSink struct {
	ctx     context.Context
	limiter flowcontrol.RateLimiter
	sink    record.EventSink
}

var _ record.EventSink = (*rateLimitedSink)(nil)

func (s *rateLimitedSink) wait() error { return s.limiter.Wait(s.ctx) }

func (s *rateLimitedSink) Create(ev *corev1.Event) (*corev1.Event, error) {
	if err := s.wait(); err != nil {
		return nil, err
	}
	return s.sink.Create(ev)
}

func (s *rateLimitedSink) Update(ev *corev1.Event) (*corev1.Event, error) {
	if err := s.wait(); err != nil {
		return nil, err
	}
	return s.sink.Update(ev)
}

func (s *rateLimitedSink) Patch(ev *corev1.Event, data []byte) (*corev1.Event, error) {
	if err := s.wait(); err != nil {
		return nil, err
	}
	return s.sink.Patch(ev, data)
}
