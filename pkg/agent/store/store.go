// Package store persists what the agent must remember across restarts in one
// bbolt file: its identity (device ID, key, certificate, the hub's CA), the
// desired state last received from the hub, and each container's restart count.
// Every method is a single transaction; a Store is safe for concurrent use.
// A WriteBehind queues changes of the desired state and writes them in the
// background, many to a transaction.
//
// Workloads carry secret material (env from secrets, secret volume files).
// Once SetSealKey is called, the desired state is written sealed with
// AES-256-GCM, so no secret lands on the device's disk in the clear.
package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	hubv1 "github.com/edgefabric/edgefabric/pkg/apis/hub/v1"
)

var (
	bucketIdentity = []byte("identity")
	bucketDesired  = []byte("desired")
	bucketRestarts = []byte("restarts")
	bucketFenced   = []byte("fenced")
	keyGeneration  = []byte("\x00generation")
)

// Store is the agent's persistent state.
type Store struct {
	db *bolt.DB

	mu   sync.RWMutex
	aead cipher.AEAD // nil: workloads are stored in the clear
}

// sealMagic starts every sealed workload record.
var sealMagic = []byte("efseal1\x00")

// SetSealKey makes the store seal workloads with key (32 bytes, AES-256-GCM)
// from now on, and read sealed ones. Workloads already stored in the clear,
// or sealed with one of the legacy keys (keys an older agent used), are
// sealed with key at once, and the file is then compacted into a new one, so
// that their old bytes are not left in its free pages. Records no key opens
// are left as they are (Desired skips them). Call it before any other use
// of the store: it may replace the open file.
func (s *Store) SetSealKey(key []byte, legacy ...[]byte) error {
	aead, err := newAEAD(key)
	if err != nil {
		return err
	}
	var olds []cipher.AEAD
	for _, k := range legacy {
		a, err := newAEAD(k)
		if err != nil {
			return fmt.Errorf("legacy %w", err)
		}
		olds = append(olds, a)
	}
	s.mu.Lock()
	s.aead = aead
	s.mu.Unlock()
	resealed, err := s.reseal(aead, olds)
	if err != nil {
		return fmt.Errorf("reseal stored workloads: %w", err)
	}
	if resealed == 0 {
		return nil
	}
	if err := s.compact(); err != nil {
		return fmt.Errorf("compact store after resealing: %w", err)
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return aead, nil
}

// reseal seals with aead every workload record stored in the clear or sealed
// with one of olds, and returns how many it rewrote.
func (s *Store) reseal(aead cipher.AEAD, olds []cipher.AEAD) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDesired)
		redo := map[string][]byte{}
		err := b.ForEach(func(k, v []byte) error {
			if string(k) == string(keyGeneration) {
				return nil
			}
			if !bytes.HasPrefix(v, sealMagic) {
				redo[string(k)] = clone(v)
				return nil
			}
			if _, ok := openWith(aead, v, string(k)); ok {
				return nil
			}
			for _, old := range olds {
				if plain, ok := openWith(old, v, string(k)); ok {
					redo[string(k)] = plain
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for k, plain := range redo {
			v, err := sealWith(aead, plain, k)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		n = len(redo)
		return nil
	})
	return n, err
}

// compact copies the store into a new file and puts that in the old one's
// place: bbolt leaves overwritten records in free pages, which a copy does
// not carry over.
func (s *Store) compact() error {
	path := s.db.Path()
	tmp := path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, s.db, 0); err != nil {
		dst.Close()
		_ = os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := s.db.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

func sealWith(aead cipher.AEAD, plain []byte, uid string) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append([]byte{}, sealMagic...), nonce...)
	return aead.Seal(out, nonce, plain, []byte(uid)), nil
}

func openWith(aead cipher.AEAD, v []byte, uid string) ([]byte, bool) {
	v = v[len(sealMagic):]
	if len(v) < aead.NonceSize() {
		return nil, false
	}
	plain, err := aead.Open(nil, v[:aead.NonceSize()], v[aead.NonceSize():], []byte(uid))
	return plain, err == nil
}

func (s *Store) seal(plain []byte, uid string) ([]byte, error) {
	s.mu.RLock()
	aead := s.aead
	s.mu.RUnlock()
	if aead == nil {
		return plain, nil
	}
	return sealWith(aead, plain, uid)
}

// open returns a record's workload bytes; ok is false for a sealed record
// this store cannot open (no key, or another key).
func (s *Store) open(v []byte, uid string) (plain []byte, ok bool) {
	if !bytes.HasPrefix(v, sealMagic) {
		return v, true
	}
	s.mu.RLock()
	aead := s.aead
	s.mu.RUnlock()
	if aead == nil {
		return nil, false
	}
	return openWith(aead, v, uid)
}

// Open opens (creating if needed) the store at path. Only one process may hold
// it: a second agent on the same data directory fails here after a second.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIdentity, bucketDesired, bucketRestarts, bucketFenced} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Identity is who the agent is to the hub.
type Identity struct {
	DeviceID string
	Account  string
	KeyDER   []byte // PKCS#8
	CertDER  []byte // nil before bootstrap
	CADER    []byte
	// Decommissioned is the hub's refusal of a device removed from the
	// fleet, empty while it is in it; DecommissionedToken is the SHA-256 of
	// the bootstrap token the agent had then (only another token joins again).
	Decommissioned      string
	DecommissionedToken []byte
}

// Identity returns the stored identity; a zero Identity if none.
func (s *Store) Identity() (Identity, error) {
	var id Identity
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdentity)
		id.DeviceID = string(b.Get([]byte("device")))
		id.Account = string(b.Get([]byte("account")))
		id.KeyDER = clone(b.Get([]byte("key")))
		id.CertDER = clone(b.Get([]byte("cert")))
		id.CADER = clone(b.Get([]byte("ca")))
		id.Decommissioned = string(b.Get([]byte("decommissioned")))
		id.DecommissionedToken = clone(b.Get([]byte("decommissioned-token")))
		return nil
	})
	return id, err
}

// SetIdentity replaces the stored identity.
func (s *Store) SetIdentity(id Identity) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdentity)
		for k, v := range map[string][]byte{
			"device": []byte(id.DeviceID), "account": []byte(id.Account),
			"key": id.KeyDER, "cert": id.CertDER, "ca": id.CADER,
			"decommissioned": []byte(id.Decommissioned), "decommissioned-token": id.DecommissionedToken,
		} {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Desired returns the stored desired state (generation 0 and nothing if none).
// Sealed workloads it cannot open (the device key changed) are left out: the
// hub sends them again on connect.
func (s *Store) Desired() (uint64, []*hubv1.Workload, error) {
	var gen uint64
	var ws []*hubv1.Workload
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDesired)
		if v := b.Get(keyGeneration); len(v) == 8 {
			gen = binary.BigEndian.Uint64(v)
		}
		return b.ForEach(func(k, v []byte) error {
			if string(k) == string(keyGeneration) {
				return nil
			}
			plain, ok := s.open(v, string(k))
			if !ok {
				return nil
			}
			w := &hubv1.Workload{}
			if err := proto.Unmarshal(plain, w); err != nil {
				return fmt.Errorf("workload %s: %w", k, err)
			}
			ws = append(ws, w)
			return nil
		})
	})
	return gen, ws, err
}

// Change is one change of the desired state: exactly one of Replace,
// Upsert and Delete says what, and Generation is the generation after it.
type Change struct {
	Generation uint64
	// Replace, if set, replaces all workloads with Workloads.
	Replace   bool
	Workloads []*hubv1.Workload
	// Upsert stores one workload.
	Upsert *hubv1.Workload
	// Delete removes one workload, by UID, and its restart counts.
	Delete string
}

// Apply makes changes, in order, in one transaction: one write to disk for
// all of them.
func (s *Store) Apply(changes ...Change) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, c := range changes {
			if err := s.apply(tx, c); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) apply(tx *bolt.Tx, c Change) error {
	b := tx.Bucket(bucketDesired)
	switch {
	case c.Replace:
		if err := tx.DeleteBucket(bucketDesired); err != nil {
			return err
		}
		var err error
		if b, err = tx.CreateBucket(bucketDesired); err != nil {
			return err
		}
		for _, w := range c.Workloads {
			if err := s.putWorkload(b, w); err != nil {
				return err
			}
		}
	case c.Upsert != nil:
		if err := s.putWorkload(b, c.Upsert); err != nil {
			return err
		}
	case c.Delete != "":
		if err := b.Delete([]byte(c.Delete)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketRestarts).DeleteBucket([]byte(c.Delete)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
	}
	return putGen(b, c.Generation)
}

// SetDesired replaces the desired state.
func (s *Store) SetDesired(gen uint64, ws []*hubv1.Workload) error {
	return s.Apply(Change{Generation: gen, Replace: true, Workloads: ws})
}

// Upsert stores one workload and the new generation.
func (s *Store) Upsert(gen uint64, w *hubv1.Workload) error {
	return s.Apply(Change{Generation: gen, Upsert: w})
}

// Delete removes one workload (and its restart counts) and stores the new generation.
func (s *Store) Delete(gen uint64, uid string) error {
	return s.Apply(Change{Generation: gen, Delete: uid})
}

// Restarts returns the stored restart count of a container.
func (s *Store) Restarts(uid, container string) (int32, error) {
	var n int32
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRestarts).Bucket([]byte(uid)); b != nil {
			if v := b.Get([]byte(container)); len(v) == 4 {
				n = int32(binary.BigEndian.Uint32(v))
			}
		}
		return nil
	})
	return n, err
}

// SetRestarts stores a container's restart count.
func (s *Store) SetRestarts(uid, container string, n int32) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketRestarts).CreateBucketIfNotExists([]byte(uid))
		if err != nil {
			return err
		}
		return b.Put([]byte(container), binary.BigEndian.AppendUint32(nil, uint32(n)))
	})
}

func putGen(b *bolt.Bucket, gen uint64) error {
	return b.Put(keyGeneration, binary.BigEndian.AppendUint64(nil, gen))
}

func (s *Store) putWorkload(b *bolt.Bucket, w *hubv1.Workload) error {
	if w.GetUid() == "" {
		return errors.New("workload without uid")
	}
	v, err := proto.Marshal(w)
	if err != nil {
		return err
	}
	if v, err = s.seal(v, w.GetUid()); err != nil {
		return err
	}
	return b.Put([]byte(w.GetUid()), v)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// SetFenced records that the workload uid was stopped because the device lost
// the hub (why says so), or with why empty that it no longer is. The record
// outlives an agent restart, so that a fenced workload is not started again
// before the hub has said it still wants it here.
func (s *Store) SetFenced(uid, why string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFenced)
		if why == "" {
			return b.Delete([]byte(uid))
		}
		return b.Put([]byte(uid), []byte(why))
	})
}

// Fenced returns the fenced workloads' uids with why each was fenced.
func (s *Store) Fenced() (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFenced).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	return out, err
}
