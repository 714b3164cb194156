package fabric

import (
	"context"
	"errors"
	"sort"
	"sync"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/pkg/identity"
)

// ErrSessionClosed is returned by Next once a newer session replaced this one or
// the device was disconnected.
var ErrSessionClosed = errors.New("session closed")

// ErrDecommissioned is returned by Next once the device was removed from the
// fleet by Drop.
var ErrDecommissioned = errors.New("device decommissioned")

// Session is what the fabric has to say to one connected agent. Its queue is
// bounded by the device's workloads: a newer delta of a workload replaces an
// unsent older one, and a full desired state replaces every unsent delta.
type Session struct {
	device identity.Device

	mu      sync.Mutex
	full    *hubv1.DesiredState
	deltas  map[string]*hubv1.WorkloadDelta // by workload uid
	streams []*hubv1.StreamRequest
	replies []uint64 // probe nonces to answer, at most maxReplies
	wake    chan struct{}
	closed  chan struct{}
	reason  error // why closed: ErrSessionClosed unless set
}

func newSession(d identity.Device) *Session {
	return &Session{
		device: d,
		deltas: map[string]*hubv1.WorkloadDelta{},
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
}

// Device is the device the session belongs to.
func (s *Session) Device() identity.Device { return s.device }

// Done is closed when the session was replaced or disconnected.
func (s *Session) Done() <-chan struct{} { return s.closed }

func (s *Session) close() { s.closeWith(ErrSessionClosed) }

// closeWith closes the session; Next returns reason from then on.
func (s *Session) closeWith(reason error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
	default:
		s.reason = reason
		close(s.closed)
	}
}

func (s *Session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Session) queueFull(gen uint64, ws map[string]*hubv1.Workload) {
	ds := &hubv1.DesiredState{Generation: gen}
	for _, w := range ws {
		ds.Workloads = append(ds.Workloads, w)
	}
	sort.Slice(ds.Workloads, func(i, j int) bool { return ds.Workloads[i].GetUid() < ds.Workloads[j].GetUid() })
	s.mu.Lock()
	s.full = ds
	clear(s.deltas)
	s.mu.Unlock()
	s.signal()
}

func (s *Session) queueDelta(d *hubv1.WorkloadDelta) {
	uid := d.GetDeleteUid()
	if d.GetUpsert() != nil {
		uid = d.GetUpsert().GetUid()
	}
	s.mu.Lock()
	s.deltas[uid] = d
	s.mu.Unlock()
	s.signal()
}

func (s *Session) queueStream(r *hubv1.StreamRequest) {
	s.mu.Lock()
	s.streams = append(s.streams, r)
	s.mu.Unlock()
	s.signal()
}

// maxReplies bounds the probe replies waiting to be sent: an agent that
// probes faster than its replies drain loses the oldest.
const maxReplies = 8

// Reply queues the answer to the agent's round-trip probe nonce.
func (s *Session) Reply(nonce uint64) {
	s.mu.Lock()
	if len(s.replies) >= maxReplies {
		s.replies = s.replies[1:]
	}
	s.replies = append(s.replies, nonce)
	s.mu.Unlock()
	s.signal()
}

// Next blocks until there is something to send, then returns all of it in the
// order it must be sent: a full state first, then deltas by generation, then
// stream requests.
func (s *Session) Next(ctx context.Context) ([]*hubv1.HubMessage, error) {
	for {
		s.mu.Lock()
		var out []*hubv1.HubMessage
		// Probe replies first: the round trip they measure should not
		// include the time it takes to send a large desired state.
		for _, n := range s.replies {
			out = append(out, &hubv1.HubMessage{Msg: &hubv1.HubMessage_ProbeReply{ProbeReply: &hubv1.HubProbeReply{Nonce: n}}})
		}
		s.replies = nil
		if s.full != nil {
			// In parts if it is too large for one message.
			for _, part := range hubv1.SplitDesired(s.full, hubv1.MaxDesiredPartBytes) {
				out = append(out, &hubv1.HubMessage{Msg: &hubv1.HubMessage_Desired{Desired: part}})
			}
			s.full = nil
		}
		ds := make([]*hubv1.WorkloadDelta, 0, len(s.deltas))
		for _, d := range s.deltas {
			ds = append(ds, d)
		}
		clear(s.deltas)
		sort.Slice(ds, func(i, j int) bool { return ds[i].GetGeneration() < ds[j].GetGeneration() })
		for _, d := range ds {
			out = append(out, &hubv1.HubMessage{Msg: &hubv1.HubMessage_Delta{Delta: d}})
		}
		for _, r := range s.streams {
			out = append(out, &hubv1.HubMessage{Msg: &hubv1.HubMessage_Stream{Stream: r}})
		}
		s.streams = nil
		s.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-s.wake:
		case <-s.closed:
			s.mu.Lock()
			defer s.mu.Unlock()
			return nil, s.reason
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
