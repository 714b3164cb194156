package image_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edgefabric/edgefabric/pkg/agent/image"
	"github.com/edgefabric/edgefabric/test/ocitest"
	"github.com/edgefabric/edgefabric/test/poll"
)

// pushPadded pushes n wasm artifacts repo-0 … repo-<n-1>, each with a
// module of its own of about kib KiB, and returns their references.
func pushPadded(t *testing.T, reg, repo string, n, kib int) []string {
	t.Helper()
	var refs []string
	for i := range n {
		ref := fmt.Sprintf("%s/%s-%d:v1", reg, repo, i)
		module := append(bytes.Clone(tiny(t)), make([]byte, kib<<10)...)
		module[len(module)-1] = byte(i + 1) // each its own digest
		ocitest.Push(t, ref, module, ocitest.WasmArtifact)
		refs = append(refs, ref)
	}
	return refs
}

// present reports which of refs the store has.
func present(s *image.Store, refs ...string) []bool {
	var got []bool
	for _, ref := range refs {
		_, err := s.Lookup(ref)
		got = append(got, err == nil)
	}
	return got
}

// TestCollect: images in use (by reference or image ID) are never
// removed; unused ones are removed once unused for MaxUnusedAge, or least
// recently used first while the cache is over its budget.
func TestCollect(t *testing.T) {
	reg := ocitest.Serve(t)
	refs := pushPadded(t, reg, "gc", 4, 16) // four images of about 16 KiB
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("by age", func(t *testing.T) {
		store := storeWith(t, image.Config{MaxUnusedAge: time.Hour})
		var ids []string
		for _, ref := range refs {
			a, err := store.Pull(t.Context(), ref, "")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, a.ImageID)
		}
		all := image.InUse{Refs: refs}
		// refs[0] by reference, refs[1] by the ID a running container has.
		some := image.InUse{Refs: refs[:1], ImageIDs: ids[1:2]}
		steps := []struct {
			at    time.Time
			inUse image.InUse
			want  []bool
		}{
			{t0, all, []bool{true, true, true, true}},
			{t0.Add(30 * time.Minute), some, []bool{true, true, true, true}},   // unused for 30 minutes
			{t0.Add(61 * time.Minute), some, []bool{true, true, false, false}}, // for more than an hour
			{t0.Add(48 * time.Hour), image.InUse{}, []bool{false, false, false, false}},
		}
		for i, st := range steps {
			if err := store.Collect(st.inUse, st.at); err != nil {
				t.Fatal(err)
			}
			if got := present(store, refs...); fmt.Sprint(got) != fmt.Sprint(st.want) {
				t.Errorf("step %d: present %v, want %v", i, got, st.want)
			}
		}
	})

	t.Run("by budget", func(t *testing.T) {
		t0 := time.Now() // pulls count as uses, at the time they happen
		// Room for about three of the four.
		store := storeWith(t, image.Config{MaxBytes: 56 << 10})
		for _, ref := range refs[:3] {
			if _, err := store.Pull(t.Context(), ref, ""); err != nil {
				t.Fatal(err)
			}
		}
		// Under the budget, these collections remove nothing; they mark
		// refs[2] last used at t0 and refs[1] at t0+1m.
		for i, inUse := range [][]string{refs[:3], refs[:2]} {
			if err := store.Collect(image.InUse{Refs: inUse}, t0.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := present(store, refs...), []bool{true, true, true, false}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("present %v under the budget, want %v", got, want)
		}
		if _, err := store.Pull(t.Context(), refs[3], ""); err != nil {
			t.Fatal(err)
		}
		if u := store.Usage(); u < 64<<10 {
			t.Fatalf("Usage() = %d after four pulls of 16 KiB, want at least 64 KiB", u)
		}
		// Over the budget with refs[0] in use: down to 80 % of the budget
		// (44.8 KiB), least recently used first: refs[2] (t0), then
		// refs[3] (pulled just after t0); refs[1] (t0+1m) fits.
		if err := store.Collect(image.InUse{Refs: refs[:1]}, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, want := present(store, refs...), []bool{true, true, false, false}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("present %v, want %v", got, want)
		}
		if u := store.Usage(); u > 56<<10*8/10 {
			t.Errorf("Usage() = %d after GC, want at most 80 %% of the budget", u)
		}

		// Over the budget with every image in use: none is removed.
		small := storeWith(t, image.Config{MaxBytes: 30 << 10})
		for _, ref := range refs[:2] {
			if _, err := small.Pull(t.Context(), ref, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := small.Collect(image.InUse{Refs: refs[:2]}, t0); err != nil {
			t.Fatal(err)
		}
		if got := present(small, refs[:2]...); !got[0] || !got[1] {
			t.Errorf("present %v: an image in use was removed to meet the budget", got)
		}
		if u := small.Usage(); u <= 30<<10 {
			t.Errorf("Usage() = %d, want over the budget", u)
		}
	})
}

// TestBudgetTriggersGC: a pull that takes the cache past its budget
// starts a collection at once, long before RunGC's interval.
func TestBudgetTriggersGC(t *testing.T) {
	reg := ocitest.Serve(t)
	refs := pushPadded(t, reg, "trigger", 3, 16)
	store := storeWith(t, image.Config{MaxBytes: 40 << 10})
	inUse := make(chan image.InUse, 1)
	inUse <- image.InUse{Refs: refs[:1]}
	done := make(chan error)
	go func() {
		done <- store.RunGC(t.Context(), time.Hour, func() image.InUse {
			u := <-inUse
			inUse <- u
			return u
		})
	}()
	t.Cleanup(func() { <-done }) //nolint:errcheck // t.Context() ends first
	// The first collection, at start, finds nothing to do.
	if _, err := store.Pull(t.Context(), refs[1], ""); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Pull(t.Context(), refs[0], ""); err != nil {
		t.Fatal(err)
	}
	if got := present(store, refs[:2]...); !got[0] || !got[1] {
		t.Fatalf("present %v under the budget, want both", got)
	}
	// A workload wants refs[2] instead of refs[1]; its pull takes the
	// cache past 40 KiB: refs[1], unused, goes.
	<-inUse
	inUse <- image.InUse{Refs: []string{refs[0], refs[2]}}
	if _, err := store.Pull(t.Context(), refs[2], ""); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, func() bool {
		_, err := store.Lookup(refs[1])
		return errors.Is(err, image.ErrNotPresent)
	})
	if got := present(store, refs[0], refs[2]); !got[0] || !got[1] {
		t.Errorf("images in use present %v, want both", got)
	}
}
