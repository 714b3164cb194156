// Package enrollment remembers which devices are enrolled: a device holds a
// certificate the provider issued, or one it may still renew (expired less
// than the renewal grace ago). The hub refuses a bootstrap token for an
// enrolled device ID, so a token enrols new devices and never takes over an
// enrolled one. Records are kept in a revocation.Backend (a ConfigMap in the
// provider's namespace, or a file in its state directory) so that a
// restarted provider, or a new leader, still knows them; OpenSharded spreads
// them over several backends by a hash of the device, so that no ConfigMap
// passes Kubernetes' 1 MiB and a change writes one shard, not every record.
// A Store is safe for concurrent use; changes write through to the backend,
// lookups are served from memory.
package enrollment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"sync"
	"time"

	"github.com/edgefabric/edgefabric/pkg/identity"
	"github.com/edgefabric/edgefabric/pkg/provider/revocation"
)

// Record is one enrolled device.
type Record struct {
	// Issued is when the device's newest certificate was signed.
	Issued time.Time `json:"issued"`
	// Until is when the record lapses: the newest certificate's expiry plus
	// the renewal grace. Past it the device must join again with a token.
	Until time.Time `json:"until"`
	// Token is TokenSum of the bootstrap token that enrolled the device;
	// empty when it is not known (a device first seen by its certificate).
	Token string `json:"token,omitempty"`
}

// TokenSum names a token in records without keeping it: the hex SHA-256.
func TokenSum(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// Store is the set of enrolled devices.
type Store struct {
	shards []revocation.Backend

	mu      sync.Mutex
	records map[string]Record // by account/id
}

// Open loads the records kept in b, dropping those lapsed at now.
func Open(ctx context.Context, b revocation.Backend, now time.Time) (*Store, error) {
	return OpenSharded(ctx, []revocation.Backend{b}, now)
}

// OpenSharded loads the records kept in shards, dropping those lapsed at
// now; a record is kept in the shard its device hashes to. Records found
// in another shard (written with another number of shards) are moved to
// theirs; of two records of one device the newer is kept.
func OpenSharded(ctx context.Context, shards []revocation.Backend, now time.Time) (*Store, error) {
	if len(shards) == 0 {
		return nil, errors.New("enrollments: no backend")
	}
	s := &Store{shards: shards, records: map[string]Record{}}
	moved := map[int]bool{}
	for i, b := range shards {
		data, err := b.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("load enrollments (shard %d): %w", i, err)
		}
		if len(data) == 0 {
			continue
		}
		var records map[string]Record
		if err := json.Unmarshal(data, &records); err != nil {
			return nil, fmt.Errorf("decode enrollments (shard %d): %w", i, err)
		}
		for k, r := range records {
			if !now.Before(r.Until) {
				continue
			}
			if home := s.shard(k); home != i {
				moved[i], moved[home] = true, true
			}
			if old, ok := s.records[k]; !ok || r.Issued.After(old.Issued) {
				s.records[k] = r
			}
		}
	}
	for i := range moved {
		if err := s.write(ctx, i, s.records); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// shard is the index of the shard that keeps the record of key k.
func (s *Store) shard(k string) int {
	h := fnv.New32a()
	h.Write([]byte(k))
	return int(h.Sum32() % uint32(len(s.shards)))
}

// write saves to shard i the records of records that belong there.
func (s *Store) write(ctx context.Context, i int, records map[string]Record) error {
	mine := map[string]Record{}
	for k, r := range records {
		if s.shard(k) == i {
			mine[k] = r
		}
	}
	data, err := json.Marshal(mine)
	if err != nil {
		return err
	}
	if err := s.shards[i].Save(ctx, data); err != nil {
		return fmt.Errorf("save enrollments (shard %d): %w", i, err)
	}
	return nil
}

func key(d identity.Device) string { return d.Account + "/" + d.ID }

// Enrolled returns d's record, if it has one that has not lapsed at now.
func (s *Store) Enrolled(d identity.Device, now time.Time) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key(d)]
	if !ok || !now.Before(r.Until) {
		return Record{}, false
	}
	return r, true
}

// Enrol records d as enrolled by r (a join), replacing an earlier record,
// and saves the records.
func (s *Store) Enrol(ctx context.Context, d identity.Device, r Record, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.save(ctx, d, r, now)
}

// Renewed records that d's certificate was renewed: issued at issued,
// the record lapsing at until. The token that enrolled it is kept. A device
// without a record (enrolled before records were kept) gets one.
func (s *Store) Renewed(ctx context.Context, d identity.Device, issued, until, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.records[key(d)]
	if !now.Before(r.Until) {
		r = Record{}
	}
	r.Issued, r.Until = issued, until
	return s.save(ctx, d, r, now)
}

// Seen records d, which proved a certificate issued at issued whose record
// lapses at until, unless a record at least as new is kept already: then it
// writes nothing. It enrols the devices that joined before records were kept.
func (s *Store) Seen(ctx context.Context, d identity.Device, issued, until, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[key(d)]
	if ok && now.Before(r.Until) && !r.Issued.Before(issued) {
		return nil
	}
	if ok && now.Before(r.Until) {
		r.Issued, r.Until = issued, until
	} else {
		r = Record{Issued: issued, Until: until}
	}
	return s.save(ctx, d, r, now)
}

// save sets d's record to r, drops lapsed records and writes the shard of
// d; s.mu is held. Lapsed records of other shards leave their backend when
// it is next written, and are dropped when it is loaded.
func (s *Store) save(ctx context.Context, d identity.Device, r Record, now time.Time) error {
	next := maps.Clone(s.records)
	maps.DeleteFunc(next, func(_ string, r Record) bool { return !now.Before(r.Until) })
	next[key(d)] = r
	if err := s.write(ctx, s.shard(key(d)), next); err != nil {
		return err
	}
	s.records = next
	return nil
}

// Memory keeps the records in memory only: for tests and a hub that need
// not survive a restart.
type Memory struct {
	mu   sync.Mutex
	data []byte
}

var _ revocation.Backend = (*Memory)(nil)

// Load implements revocation.Backend.
func (m *Memory) Load(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data, nil
}

// Save implements revocation.Backend.
func (m *Memory) Save(_ context.Context, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = data
	return nil
}
