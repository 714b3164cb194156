package store

import (
	"bytes"
	"errors"
	"os"
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

// TestSealedWorkloads: with a seal key, secret material never appears in the
// file in the clear; the same key reads it back, another key skips it.
func TestSealedWorkloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	key := bytes.Repeat([]byte{7}, 32)
	secret := "hunter2-very-secret"
	w := &hubv1.Workload{
		Uid: "s", Name: "s",
		Containers: []*hubv1.Container{{Name: "c", Env: []*hubv1.EnvVar{{Name: "PASSWORD", Value: secret}}}},
		Volumes:    []*hubv1.Volume{{Name: "v", Kind: "secret", Sensitive: true, Files: []*hubv1.VolumeFile{{Path: "p", Data: []byte(secret)}}}},
	}
	tests := []struct {
		name      string
		readKey   []byte
		wantFound bool
	}{
		{name: "same key", readKey: key, wantFound: true},
		{name: "other key", readKey: bytes.Repeat([]byte{8}, 32)},
		{name: "no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetSealKey(key); err != nil {
				t.Fatal(err)
			}
			if err := s.SetDesired(1, []*hubv1.Workload{w}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(secret)) {
				t.Fatalf("the store file holds the secret in the clear")
			}
			s, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tt.readKey != nil {
				if err := s.SetSealKey(tt.readKey); err != nil {
					t.Fatal(err)
				}
			}
			_, ws, err := s.Desired()
			if err != nil {
				t.Fatalf("Desired: %v", err)
			}
			if found := len(ws) == 1; found != tt.wantFound {
				t.Fatalf("Desired: got %d workloads, want found %v", len(ws), tt.wantFound)
			}
			if tt.wantFound {
				if diff := cmp.Diff(w, ws[0], protocmp.Transform()); diff != "" {
					t.Errorf("Desired (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestFencedSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ uid, why string }{{"a", "lost the hub"}, {"b", "also"}, {"b", ""}} {
		if err := s.SetFenced(c.uid, c.why); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Fenced()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"a": "lost the hub"}, got); diff != "" {
		t.Errorf("fenced (-want +got):\n%s", diff)
	}
}
