// Package enrollment remembers which devices are enrolled: a device holds a
// certificate the provider issued, or one it may still renew (expired less
// than the renewal grace ago). The hub refuses a bootstrap token for an
// enrolled device ID, so a token enrols new devices and never takes over an
// enrolled one. Records are kept in a revocation.Backend (a ConfigMap in the
// provider's namespace, or a file in its state directory) so that a
// restarted provider, or a new leader, still knows them. A Store is safe for
// concurrent use; changes write through to the backend, lookups are served
// from memory.
package enrollment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	b revocation.Backend

	mu      sync.Mutex
	records map[string]Record // by account/id
}

// Open loads the records kept in b, dropping those lapsed at now.
func Open(ctx context.Context, b revocation.Backend, now time.Time) (*Store, error) {
	data, err := b.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load enrollments: %w", err)
	}
	records := map[string]Record{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &records); err != nil {
			return nil, fmt.Errorf("decode enrollments: %w", err)
		}
	}
	maps.DeleteFunc(records, func(_ string, r Record) bool { return !now.Before(r.Until) })
	return &Store{b: b, records: records}, nil
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

// save sets d's record to r, drops lapsed records and writes them all; s.mu
// is held.
func (s *Store) save(ctx context.Context, d identity.Device, r Record, now time.Time) error {
	next := maps.Clone(s.records)
	maps.DeleteFunc(next, func(_ string, r Record) bool { return !now.Before(r.Until) })
	next[key(d)] = r
	data, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := s.b.Save(ctx, data); err != nil {
		return fmt.Errorf("save enrollments: %w", err)
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
