package store

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
	"github.com/edgefabric/edgefabric/test/disktest"
)

// fill writes a file at path until the disk is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

func workload(uid string, envBytes int) *hubv1.Workload {
	return &hubv1.Workload{Uid: uid, Name: uid, Containers: []*hubv1.Container{{
		Name: "c", Image: "r/x:1", Env: []*hubv1.EnvVar{{Name: "PAD", Value: strings.Repeat("x", envBytes)}},
	}}}
}

// TestDiskFullKeepsDesiredState: on a full disk, writes of the desired
// state fail with an error that says so; what was stored stays readable,
// also after a reopen, and the write-behind queue writes the change once
// there is room again.
func TestDiskFullKeepsDesiredState(t *testing.T) {
	disk := disktest.Small(t, "2m")
	path := filepath.Join(disk, "agent.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if err := s.SetSealKey(make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	before := []*hubv1.Workload{workload("a", 100), workload("b", 100)}
	if err := s.SetDesired(1, before); err != nil {
		t.Fatal(err)
	}
	fill(t, filepath.Join(disk, "filler"))

	err = s.Apply(Change{Generation: 2, Upsert: workload("big", 1<<20)})
	if err == nil {
		t.Fatal("a write of 1 MiB on a full disk succeeded")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %v is not ENOSPC", err)
	}
	check := func(when string, s *Store, wantGen uint64, want []*hubv1.Workload) {
		t.Helper()
		gen, got, err := s.Desired()
		if err != nil {
			t.Fatalf("%s: Desired: %v", when, err)
		}
		if gen != wantGen {
			t.Errorf("%s: generation %d, want %d", when, gen, wantGen)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("%s: desired state mismatch (-want +got):\n%s", when, diff)
		}
	}
	check("after the failed write", s, 1, before)

	if err := s.Close(); err != nil {
		t.Logf("close on a full disk: %v", err)
	}
	if s, err = Open(path); err != nil {
		t.Fatalf("reopen on a full disk: %v", err)
	}
	if err := s.SetSealKey(make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	check("reopened on a full disk", s, 1, before)

	// Queued while the disk is full, written once there is room.
	wb := NewWriteBehind(s, slog.New(slog.DiscardHandler))
	wb.Queue(Change{Generation: 2, Upsert: workload("c", 1<<20)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = wb.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := os.Remove(filepath.Join(disk, "filler")); err != nil {
		t.Fatal(err)
	}
	wb.Flush()
	check("after room was made", s, 2, append(before, workload("c", 1<<20)))
}
