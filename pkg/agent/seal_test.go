package agent

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgefabric/edgefabric/pkg/agent/store"
	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

// TestSealStoreKeyNotInDatabase: the seal key is in a 0600 file beside the
// store; a workload an older agent sealed with the key derived from the
// device key in the store is resealed, so that the store alone, which holds
// that device key, no longer opens it.
func TestSealStoreKeyNotInDatabase(t *testing.T) {
	dir := t.TempDir()
	dbPath, keyPath := filepath.Join(dir, "agent.db"), filepath.Join(dir, "seal.key")
	st, err := store.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	keyDER := []byte("device private key")
	if err := st.SetIdentity(store.Identity{DeviceID: "pi-1", KeyDER: keyDER}); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	h.Write([]byte("edgefabric/store-seal/v1\x00"))
	h.Write(keyDER)
	derived := h.Sum(nil)
	if err := st.SetSealKey(derived); err != nil {
		t.Fatal(err)
	}
	w := &hubv1.Workload{Uid: "w", Name: "w"}
	if err := st.Upsert(1, w); err != nil {
		t.Fatal(err)
	}

	if err := sealStore(st, keyPath); err != nil {
		t.Fatal(err)
	}
	st.Close()
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("no key file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	key, _ := os.ReadFile(keyPath)
	if bytes.Equal(key, derived) {
		t.Fatal("the seal key is the one derived from the store")
	}
	for _, k := range []struct {
		name  string
		key   []byte
		found int
	}{{"derived from the store", derived, 0}, {"from the key file", key, 1}} {
		st, err := store.Open(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.SetSealKey(k.key); err != nil {
			t.Fatal(err)
		}
		_, ws, err := st.Desired()
		st.Close()
		if err != nil || len(ws) != k.found {
			t.Errorf("key %s reads %d workloads (%v), want %d", k.name, len(ws), err, k.found)
		}
	}
}
