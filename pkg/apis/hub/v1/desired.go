package hubv1

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// MaxDesiredPartBytes bounds the workloads of one part of a full desired
// state: a message's limit less room for the envelope around them.
const MaxDesiredPartBytes = MaxMessageBytes - 1<<20

// MaxDesiredParts bounds the parts of one full desired state, and so what
// a device holds of one before it applies it (about 1 GiB).
const MaxDesiredParts = 16

// SplitDesired returns ds as the parts to send, each holding at most max
// bytes of workloads in ds's order, all with ds's generation and More set
// on all but the last. A state that fits in max is returned as it is, one
// part. A workload larger than max goes in a part of its own, which the
// transport then refuses: keep workloads under MaxDesiredPartBytes.
func SplitDesired(ds *DesiredState, max int) []*DesiredState {
	if proto.Size(ds) <= max {
		return []*DesiredState{ds}
	}
	var parts []*DesiredState
	cur := &DesiredState{Generation: ds.GetGeneration()}
	size := 0
	for _, w := range ds.GetWorkloads() {
		// A repeated field's element costs its length prefix and tag too.
		n := proto.Size(w) + 16
		if size > 0 && size+n > max {
			parts = append(parts, cur)
			cur = &DesiredState{Generation: ds.GetGeneration()}
			size = 0
		}
		cur.Workloads = append(cur.Workloads, w)
		size += n
	}
	parts = append(parts, cur)
	for _, p := range parts[:len(parts)-1] {
		p.More = true
	}
	return parts
}

// DesiredParts puts a full desired state sent in parts back together. The
// zero value is empty and ready; it is not safe for concurrent use.
type DesiredParts struct {
	gen       uint64
	parts     int
	workloads []*Workload
}

// Add takes the next message of a full desired state and returns the whole
// state once its last part is in, or nil while parts are missing. A part
// of another generation than the ones before it, or one past
// MaxDesiredParts, is an error: what was collected is dropped, and the
// next part starts a state anew.
func (d *DesiredParts) Add(ds *DesiredState) (*DesiredState, error) {
	if d.parts > 0 && ds.GetGeneration() != d.gen {
		err := fmt.Errorf("desired state %d: a part of generation %d came after %d parts", d.gen, ds.GetGeneration(), d.parts)
		d.Reset()
		return nil, err
	}
	if d.parts == 0 && !ds.GetMore() {
		return ds, nil // one message: the common case
	}
	if d.parts >= MaxDesiredParts {
		d.Reset()
		return nil, fmt.Errorf("desired state %d: more than %d parts", ds.GetGeneration(), MaxDesiredParts)
	}
	d.gen = ds.GetGeneration()
	d.parts++
	d.workloads = append(d.workloads, ds.GetWorkloads()...)
	if ds.GetMore() {
		return nil, nil
	}
	full := &DesiredState{Generation: d.gen, Workloads: d.workloads}
	d.Reset()
	return full, nil
}

// Pending reports whether parts of a state are waiting for the rest.
func (d *DesiredParts) Pending() bool { return d.parts > 0 }

// Reset drops the parts collected so far.
func (d *DesiredParts) Reset() { *d = DesiredParts{} }
