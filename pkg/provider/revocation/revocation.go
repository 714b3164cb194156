// Package revocation remembers the devices whose certificates the provider
// revoked: a device decommissioned by deleting its EdgeDevice. An entry says
// "every certificate of this device issued before At is revoked"; it expires
// once every such certificate has expired. The entries are kept in a Backend
// (a ConfigMap in the provider's namespace, or a file in its state directory)
// so that a restarted provider, or a new leader, still refuses them. A Store
// is safe for concurrent use; Revoke writes through to the backend, lookups
// are served from memory.
package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/edgefabric/edgefabric/pkg/identity"
)

// Entry revokes a device's certificates issued before At.
type Entry struct {
	// At is when the device was revoked, rounded up to a whole second (the
	// precision of certificate times): certificates issued before it are
	// refused, those issued at or after it (a new join) are accepted.
	At time.Time `json:"at"`
	// Expires is when the last certificate issued before At expires; the
	// entry is dropped then.
	Expires time.Time `json:"expires"`
}

// Backend keeps the serialised entries. Load returns nil data when nothing
// was saved yet. Implementations may block on I/O.
type Backend interface {
	Load(ctx context.Context) ([]byte, error)
	Save(ctx context.Context, data []byte) error
}

// Store is the set of revoked devices.
type Store struct {
	b Backend

	mu      sync.Mutex
	entries map[string]Entry // by account/id
}

// Open loads the entries kept in b, dropping those expired at now.
func Open(ctx context.Context, b Backend, now time.Time) (*Store, error) {
	data, err := b.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load revocations: %w", err)
	}
	entries := map[string]Entry{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &entries); err != nil {
			return nil, fmt.Errorf("decode revocations: %w", err)
		}
	}
	maps.DeleteFunc(entries, func(_ string, e Entry) bool { return !now.Before(e.Expires) })
	return &Store{b: b, entries: entries}, nil
}

func key(d identity.Device) string { return d.Account + "/" + d.ID }

// Revoke revokes every certificate of d issued before now, whose lifetime
// is at most ttl, and saves the entries. An earlier revocation of d is
// replaced.
func (s *Store) Revoke(ctx context.Context, d identity.Device, now time.Time, ttl time.Duration) (Entry, error) {
	at := now.Truncate(time.Second)
	if at.Before(now) {
		at = at.Add(time.Second)
	}
	e := Entry{At: at, Expires: at.Add(ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps.Clone(s.entries)
	maps.DeleteFunc(next, func(_ string, e Entry) bool { return !now.Before(e.Expires) })
	next[key(d)] = e
	data, err := json.Marshal(next)
	if err != nil {
		return Entry{}, err
	}
	if err := s.b.Save(ctx, data); err != nil {
		return Entry{}, fmt.Errorf("save revocations: %w", err)
	}
	s.entries = next
	return e, nil
}

// Revoked returns d's revocation, if it has one that has not expired at now.
func (s *Store) Revoked(d identity.Device, now time.Time) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key(d)]
	if !ok || !now.Before(e.Expires) {
		return Entry{}, false
	}
	return e, true
}

// File keeps the entries in a JSON file, replaced atomically on save.
type File struct{ Path string }

var _ Backend = File{}

// Load implements Backend.
func (f File) Load(context.Context) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Save implements Backend.
func (f File) Save(_ context.Context, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return err
	}
	tmp := f.Path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f.Path)
}

// ConfigMapKey is the key of the entries in the ConfigMap.
const ConfigMapKey = "revocations.json"

// ConfigMap keeps the entries in one ConfigMap.
type ConfigMap struct {
	Client          kubernetes.Interface
	Namespace, Name string
	// Key is the ConfigMap's key that holds the data; empty means
	// ConfigMapKey.
	Key string
}

func (c ConfigMap) key() string {
	if c.Key == "" {
		return ConfigMapKey
	}
	return c.Key
}

var _ Backend = ConfigMap{}

// Load implements Backend.
func (c ConfigMap) Load(ctx context.Context) ([]byte, error) {
	cm, err := c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read configmap %s/%s: %w", c.Namespace, c.Name, err)
	}
	return []byte(cm.Data[c.key()]), nil
}

// Save implements Backend.
func (c ConfigMap) Save(ctx context.Context, data []byte) error {
	cms := c.Client.CoreV1().ConfigMaps(c.Namespace)
	for range 3 {
		cm, err := cms.Get(ctx, c.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace},
				Data:       map[string]string{c.key(): string(data)},
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			return err
		}
		if err != nil {
			return fmt.Errorf("read configmap %s/%s: %w", c.Namespace, c.Name, err)
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[c.key()] = string(data)
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		return err
	}
	return fmt.Errorf("configmap %s/%s keeps changing", c.Namespace, c.Name)
}

// RevokedBefore returns the time before which d's certificates are revoked,
// if d has a revocation that has not expired at now.
func (s *Store) RevokedBefore(d identity.Device, now time.Time) (time.Time, bool) {
	e, ok := s.Revoked(d, now)
	return e.At, ok
}
