package hubv1

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

func workloadOf(uid string, size int) *Workload {
	return &Workload{Uid: uid, Volumes: []*Volume{{Name: "v", Files: []*VolumeFile{{Path: "f", Data: bytes.Repeat([]byte{'x'}, size)}}}}}
}

func TestSplitDesired(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int
		max   int
		want  [][]string // the uids of each part
	}{
		{"empty", nil, 100, [][]string{nil}},
		{"fits", []int{10, 10}, 1000, [][]string{{"w0", "w1"}}},
		{"two parts", []int{400, 400, 400}, 1000, [][]string{{"w0", "w1"}, {"w2"}}},
		{"one each", []int{600, 600, 600}, 1000, [][]string{{"w0"}, {"w1"}, {"w2"}}},
		{"too large alone", []int{10, 5000, 10}, 1000, [][]string{{"w0"}, {"w1"}, {"w2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := &DesiredState{Generation: 7}
			for i, n := range tc.sizes {
				ds.Workloads = append(ds.Workloads, workloadOf(fmt.Sprintf("w%d", i), n))
			}
			parts := SplitDesired(ds, tc.max)
			var got [][]string
			for i, p := range parts {
				var uids []string
				for _, w := range p.GetWorkloads() {
					uids = append(uids, w.GetUid())
				}
				got = append(got, uids)
				if p.GetGeneration() != 7 || p.GetMore() != (i < len(parts)-1) {
					t.Errorf("part %d: generation %d more %v; want 7, more on all but the last", i, p.GetGeneration(), p.GetMore())
				}
				if len(p.GetWorkloads()) > 1 && proto.Size(p) > tc.max {
					t.Errorf("part %d is %d bytes, over %d", i, proto.Size(p), tc.max)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parts (-want +got):\n%s", diff)
			}

			// The parts put back together are the state.
			var d DesiredParts
			var full *DesiredState
			for i, p := range parts {
				f, err := d.Add(p)
				if err != nil {
					t.Fatalf("add part %d: %v", i, err)
				}
				if (f != nil) != (i == len(parts)-1) {
					t.Fatalf("add part %d of %d: got state %v", i, len(parts), f != nil)
				}
				full = f
			}
			if diff := cmp.Diff(ds.GetWorkloads(), full.GetWorkloads(), protocmp.Transform()); diff != "" || full.GetGeneration() != 7 || d.Pending() {
				t.Errorf("assembled state: generation %d pending %v, workloads (-want +got):\n%s", full.GetGeneration(), d.Pending(), diff)
			}
		})
	}
}

func TestDesiredPartsRefuses(t *testing.T) {
	part := func(gen uint64, more bool) *DesiredState {
		return &DesiredState{Generation: gen, More: more, Workloads: []*Workload{{Uid: fmt.Sprint(gen)}}}
	}
	t.Run("another generation midway", func(t *testing.T) {
		var d DesiredParts
		if f, err := d.Add(part(3, true)); f != nil || err != nil {
			t.Fatalf("first part: %v %v", f, err)
		}
		if _, err := d.Add(part(4, false)); err == nil || !strings.Contains(err.Error(), "a part of generation 4 came after 1 parts") {
			t.Errorf("got %v, want an error naming both generations", err)
		}
		// Dropped: the next state starts anew.
		if f, err := d.Add(part(5, false)); err != nil || f.GetGeneration() != 5 || len(f.GetWorkloads()) != 1 {
			t.Errorf("after the error: got %v %v, want state 5 alone", f, err)
		}
	})
	t.Run("too many parts", func(t *testing.T) {
		var d DesiredParts
		var err error
		for i := 0; i <= MaxDesiredParts && err == nil; i++ {
			_, err = d.Add(part(9, true))
		}
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d parts", MaxDesiredParts)) || d.Pending() {
			t.Errorf("got %v (pending %v), want the parts over the limit refused and dropped", err, d.Pending())
		}
	})
}

// FuzzDesiredParts feeds the assembler messages as a hub (or something
// posing as one) might send them: it never panics, never holds more than
// MaxDesiredParts, and returns a state only at a last part.
func FuzzDesiredParts(f *testing.F) {
	f.Add([]byte{1, 1, 1, 0, 2, 0})
	f.Add([]byte{3, 1, 3, 1, 3, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var d DesiredParts
		for i := 0; i+1 < len(ops); i += 2 {
			ds := &DesiredState{Generation: uint64(ops[i] % 4), More: ops[i+1]&1 == 1, Workloads: []*Workload{{Uid: fmt.Sprint(i)}}}
			full, err := d.Add(ds)
			if full != nil && (err != nil || ds.GetMore()) {
				t.Fatalf("a state returned at a part with more set, or with an error")
			}
			if d.parts > MaxDesiredParts {
				t.Fatalf("holds %d parts", d.parts)
			}
		}
	})
}
