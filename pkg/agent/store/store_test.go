package store

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/testing/protocmp"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

func TestDesiredSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	a := &hubv1.Workload{Uid: "a", Name: "a", Containers: []*hubv1.Container{{Name: "c", Image: "r/x:1"}}}
	b := &hubv1.Workload{Uid: "b", Name: "b"}
	if err := s.SetDesired(3, []*hubv1.Workload{a, b}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(4, "b"); err != nil {
		t.Fatal(err)
	}
	c := &hubv1.Workload{Uid: "c", Name: "c"}
	if err := s.Upsert(5, c); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRestarts("a", "c", 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetIdentity(Identity{DeviceID: "pi-1", Account: "demo", KeyDER: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gen, ws, err := s.Desired()
	if err != nil {
		t.Fatal(err)
	}
	if gen != 5 {
		t.Errorf("generation: got %d, want 5", gen)
	}
	if diff := cmp.Diff([]*hubv1.Workload{a, c}, ws, protocmp.Transform()); diff != "" {
		t.Errorf("workloads (-want +got):\n%s", diff)
	}
	if n, _ := s.Restarts("a", "c"); n != 7 {
		t.Errorf("restarts: got %d, want 7", n)
	}
	id, _ := s.Identity()
	if id.DeviceID != "pi-1" || id.Account != "demo" || id.CertDER != nil {
		t.Errorf("identity: got %+v", id)
	}
}

func TestSecondOpenFailsWhileHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path); !errors.Is(err, bolterrors.ErrTimeout) {
		t.Errorf("second open: got %v, want timeout", err)
	}
}
