package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// SealKeySize is the size of a seal key: AES-256.
const SealKeySize = 32

// LoadSealKey returns the seal key kept in the file at path, creating the
// file (mode 0600, a new random key) if it does not exist. The key lives in
// a file of its own, beside the store and never in it, so that a copy of the
// store alone opens no sealed record. A key file that others than its owner
// may read, or that does not hold exactly SealKeySize bytes, is refused.
func LoadSealKey(path string) ([]byte, error) {
	key, err := readSealKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, SealKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("make seal key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readSealKey(path) // made by a racing start
	}
	if err != nil {
		return nil, fmt.Errorf("create seal key %s: %w", path, err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("write seal key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("write seal key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write seal key %s: %w", path, err)
	}
	return key, nil
}

func readSealKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal key %s may be read by others than its owner (mode %#o): make it 0600", path, fi.Mode().Perm())
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read seal key %s: %w", path, err)
	}
	if len(key) != SealKeySize {
		return nil, fmt.Errorf("seal key %s holds %d bytes, want %d", path, len(key), SealKeySize)
	}
	return key, nil
}
