package store

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// TestLoadSealKey: the key is made on first use, in a file of its own only
// its owner reads, and the same key is read back; a key file others can read
// or of the wrong size is refused.
func TestLoadSealKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seal.key")
	key, err := LoadSealKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Fatalf("key of %d bytes, want 32", len(key))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := LoadSealKey(path)
	if err != nil || !bytes.Equal(again, key) {
		t.Errorf("second load: %x, %v; want %x", again, err, key)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSealKey(path); err == nil {
			t.Error("a key file others can read: no error")
		}
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSealKey(short); err == nil {
		t.Error("a key file of 3 bytes: no error")
	}
}

// TestSetSealKeyReseals: records written before sealing (in the clear, or
// sealed with a key derived from the database itself) are sealed with the
// new key when it is set, and none of their old bytes stay in the file.
func TestSetSealKeyReseals(t *testing.T) {
	secret := "hunter2-very-secret"
	w := func(uid string) *hubv1.Workload {
		return &hubv1.Workload{Uid: uid, Name: uid, Containers: []*hubv1.Container{{Name: "c", Env: []*hubv1.EnvVar{{Name: "PASSWORD", Value: secret + "-" + uid}}}}}
	}
	legacy := bytes.Repeat([]byte{1}, 32)
	key := bytes.Repeat([]byte{2}, 32)
	path := filepath.Join(t.TempDir(), "agent.db")

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Upsert(1, w("clear")); err != nil { // no key yet
		t.Fatal(err)
	}
	// As an older agent did: a key derived from the database, and no
	// resealing of what was there.
	if s.aead, err = newAEAD(legacy); err != nil {
		t.Fatal(err)
	}
	if err := s.Upsert(2, w("legacy")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, []byte(secret+"-clear")) {
		t.Fatal("test setup: the clear record is not in the file")
	}

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSealKey(key, legacy); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, _ = os.ReadFile(path)
	if bytes.Contains(raw, []byte(secret)) {
		t.Error("after resealing, the file still holds a secret in the clear")
	}

	// Only the new key reads them now.
	for _, k := range []struct {
		name  string
		key   []byte
		found int
	}{{"legacy key", legacy, 0}, {"new key", key, 2}} {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetSealKey(k.key); err != nil {
			t.Fatal(err)
		}
		_, ws, err := s.Desired()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != k.found {
			t.Errorf("%s reads %d workloads, want %d", k.name, len(ws), k.found)
		}
		if k.found == 2 {
			if diff := cmp.Diff([]*hubv1.Workload{w("clear"), w("legacy")}, ws, protocmp.Transform()); diff != "" {
				t.Errorf("workloads (-want +got):\n%s", diff)
			}
		}
	}
}
