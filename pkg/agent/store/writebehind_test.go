package store

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

func uids(ws []*hubv1.Workload) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.GetUid())
	}
	slices.Sort(out)
	return out
}

func TestWriteBehind(t *testing.T) {
	changes := []Change{
		{Generation: 1, Replace: true, Workloads: []*hubv1.Workload{{Uid: "a"}, {Uid: "b"}}},
		{Generation: 2, Upsert: &hubv1.Workload{Uid: "c"}},
		{Generation: 3, Delete: "a"},
		{Generation: 4, Upsert: &hubv1.Workload{Uid: "a", Name: "again"}},
		{Generation: 5, Delete: "b"},
	}
	for _, tt := range []struct {
		name  string
		flush bool // Flush while running; else stop Run right after queueing
	}{{"flushed", true}, {"written when stopped", false}} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "agent.db")
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			wb := NewWriteBehind(s, slog.New(slog.DiscardHandler))
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { _ = wb.Run(ctx) })
			for _, c := range changes {
				wb.Queue(c)
			}
			if tt.flush {
				wb.Flush()
			}
			cancel()
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			gen, ws, err := s.Desired()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := uids(ws), []string{"a", "c"}; gen != 5 || !slices.Equal(got, want) {
				t.Errorf("stored generation %d, workloads %v; want 5, %v", gen, got, want)
			}
			for _, w := range ws {
				if w.GetUid() == "a" && w.GetName() != "again" {
					t.Errorf("workload a: got the one deleted, not the one stored after")
				}
			}
		})
	}
}
