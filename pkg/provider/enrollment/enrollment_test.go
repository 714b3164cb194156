package enrollment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/enrollment"
	"github.com/edgefabric/edgefabric/pkg/provider/revocation"
)

// TestStoreRecordsSurviveARestart enrols, renews and sees devices, opens
// the store again from the same file (a restarted provider) and checks
// which devices are enrolled at later times.
func TestStoreRecordsSurviveARestart(t *testing.T) {
	ctx := t.Context()
	b := revocation.File{Path: filepath.Join(t.TempDir(), "state", "enrollments.json")}
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	pi := identity.Device{Account: "acme", ID: "pi-1"}
	gw := identity.Device{Account: "acme", ID: "gw-2"}
	old := identity.Device{Account: "acme", ID: "old-3"}
	s, err := enrollment.Open(ctx, b, t0)
	if err != nil {
		t.Fatal(err)
	}
	tok := enrollment.TokenSum("secret-token")
	if err := s.Enrol(ctx, pi, enrollment.Record{Issued: t0, Until: t0.Add(time.Hour), Token: tok}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Enrol(ctx, gw, enrollment.Record{Issued: t0, Until: t0.Add(time.Hour)}, t0); err != nil {
		t.Fatal(err)
	}
	// pi-1 renews: later expiry, the enrolling token kept.
	if err := s.Renewed(ctx, pi, t0.Add(30*time.Minute), t0.Add(3*time.Hour), t0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A device enrolled before records were kept is seen by its certificate;
	// seeing an older certificate of pi-1 changes nothing.
	if err := s.Seen(ctx, old, t0, t0.Add(2*time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Seen(ctx, pi, t0, t0.Add(time.Hour), t0.Add(31*time.Minute)); err != nil {
		t.Fatal(err)
	}

	s, err = enrollment.Open(ctx, b, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Enrolled(pi, t0.Add(time.Minute)); !ok || got.Token != tok || !got.Until.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("pi-1 after a restart: got %+v %v, want enrolled until t0+3h by its token", got, ok)
	}
	for _, tc := range []struct {
		at   time.Duration
		want []bool // pi, gw, old
	}{
		{0, []bool{true, true, true}},
		{time.Hour, []bool{true, false, true}},
		{2 * time.Hour, []bool{true, false, false}},
		{3 * time.Hour, []bool{false, false, false}},
	} {
		var got []bool
		for _, d := range []identity.Device{pi, gw, old} {
			_, ok := s.Enrolled(d, t0.Add(tc.at))
			got = append(got, ok)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("enrolled at t0+%s [pi gw old] (-want +got):\n%s", tc.at, diff)
		}
	}
}

// counting is a Memory backend that counts its saves.
type counting struct {
	enrollment.Memory
	saves int
}

func (c *counting) Save(ctx context.Context, data []byte) error {
	c.saves++
	return c.Memory.Save(ctx, data)
}

// TestShards spreads records over four backends: a change writes one
// shard, every shard holds only its own devices, and records written by a
// store of one shard move to theirs when the store is opened with four.
func TestShards(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	rec := enrollment.Record{Issued: t0, Until: t0.Add(time.Hour)}
	devices := make([]identity.Device, 200)
	for i := range devices {
		devices[i] = identity.Device{Account: "acme", ID: fmt.Sprintf("pi-%d", i)}
	}

	// Written by a store of one shard, as before shards.
	old := &counting{}
	s, err := enrollment.Open(ctx, old, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devices {
		if err := s.Enrol(ctx, d, rec, t0); err != nil {
			t.Fatal(err)
		}
	}

	shards := []*counting{old, {}, {}, {}}
	backends := func() []revocation.Backend {
		var bs []revocation.Backend
		for _, c := range shards {
			bs = append(bs, c)
		}
		return bs
	}
	s, err = enrollment.OpenSharded(ctx, backends(), t0)
	if err != nil {
		t.Fatal(err)
	}
	held := func() []int {
		var n []int
		for _, c := range shards {
			data, _ := c.Load(ctx)
			var m map[string]enrollment.Record
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			n = append(n, len(m))
		}
		return n
	}
	total := 0
	for i, n := range held() {
		if n < 20 || n > 80 {
			t.Errorf("shard %d holds %d of 200 records; want them spread", i, n)
		}
		total += n
	}
	if total != len(devices) {
		t.Errorf("shards hold %d records in all, want %d", total, len(devices))
	}

	// One change, one write.
	before := make([]int, len(shards))
	for i, c := range shards {
		before[i] = c.saves
	}
	if err := s.Renewed(ctx, devices[7], t0.Add(time.Minute), t0.Add(2*time.Hour), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	writes := 0
	for i, c := range shards {
		writes += c.saves - before[i]
	}
	if writes != 1 {
		t.Errorf("a renewal wrote %d shards, want 1", writes)
	}

	// Opened again: every device, with its newest record.
	s, err = enrollment.OpenSharded(ctx, backends(), t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devices {
		if _, ok := s.Enrolled(d, t0.Add(2*time.Minute)); !ok {
			t.Errorf("%s not enrolled after reopening the shards", d.ID)
		}
	}
	if r, _ := s.Enrolled(devices[7], t0.Add(90*time.Minute)); !r.Until.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("renewed device after reopening: until %s, want t0+2h", r.Until)
	}
}
