package fabric

import (
	"context"
	"errors"
	"io"
	"sync"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// ErrStreamClosed is returned to the hub by Deliver once the consumer closed
// the stream, and to the consumer by Send once the device's side has ended.
var ErrStreamClosed = errors.New("stream closed")

// Stream is one data stream between a device and a consumer in the provider
// (kubectl logs, exec, attach or one port-forward connection). Frames are
// handed over one at a time, in both directions, without a buffer: a slow
// consumer holds up the hub's receive of that stream only, so gRPC's flow
// control pushes back on the device's sender of that stream, and never on its
// control stream or its other streams.
//
// The hub calls Deliver, Finish and Outgoing; the consumer calls Recv (or
// Read), Send and Close. Each side's methods may be called from one goroutine
// at a time per direction.
type Stream struct {
	in     chan *hubv1.StreamFrame // device → consumer
	out    chan *hubv1.StreamFrame // consumer → device
	closed chan struct{}           // the consumer is done
	ended  chan struct{}           // the device's side has ended; err is set
	err    error

	closeOnce, endOnce sync.Once

	// Read's state: data of the current frame not yet read.
	pending []byte
}

// NewStream returns an open stream.
func NewStream() *Stream {
	return &Stream{
		in:     make(chan *hubv1.StreamFrame),
		out:    make(chan *hubv1.StreamFrame),
		closed: make(chan struct{}),
		ended:  make(chan struct{}),
	}
}

// Deliver hands a frame from the device to the consumer and blocks until the
// consumer takes it. It returns ErrStreamClosed once the consumer closed the
// stream, or ctx's error.
func (s *Stream) Deliver(ctx context.Context, f *hubv1.StreamFrame) error {
	select {
	case s.in <- f:
		return nil
	case <-s.closed:
		return ErrStreamClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Finish ends the device's side: err nil means a clean end of stream. Only
// the first call counts.
func (s *Stream) Finish(err error) {
	s.endOnce.Do(func() {
		if err == nil {
			err = io.EOF
		}
		s.err = err
		close(s.ended)
	})
}

// Outgoing yields the frames the consumer sends to the device.
func (s *Stream) Outgoing() <-chan *hubv1.StreamFrame { return s.out }

// Recv returns the device's next frame. After the device's last frame it
// returns io.EOF for a clean end or the error the stream ended with; after
// Close it returns ErrStreamClosed.
func (s *Stream) Recv() (*hubv1.StreamFrame, error) {
	select {
	case f := <-s.in:
		return f, nil
	case <-s.closed:
		return nil, ErrStreamClosed
	case <-s.ended:
		// Deliver returns before Finish is called, so nothing is left in s.in.
		return nil, s.err
	}
}

// Read reads the data the device sent (for a log, the log): it skips frames
// without data.
func (s *Stream) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		f, err := s.Recv()
		if err != nil {
			return 0, err
		}
		s.pending = f.GetData()
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// Send passes a frame to the device and blocks until the hub took it. It
// returns ErrStreamClosed once the device's side has ended or the consumer
// closed the stream.
func (s *Stream) Send(ctx context.Context, f *hubv1.StreamFrame) error {
	select {
	case s.out <- f:
		return nil
	case <-s.ended:
		return ErrStreamClosed
	case <-s.closed:
		return ErrStreamClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close is called by the consumer when it wants no more data; the hub then
// ends the device's stream, which tells the device to stop.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// Done is closed once the consumer closed the stream.
func (s *Stream) Done() <-chan struct{} { return s.closed }

// Ended is closed once the device's side has ended.
func (s *Stream) Ended() <-chan struct{} { return s.ended }
